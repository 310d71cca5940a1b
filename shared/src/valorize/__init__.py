"""ValorizeAI shared package: pure domain, service layer, adapters and HTTP entry-point helpers."""
