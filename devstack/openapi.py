"""Merge every function's OpenAPI document into one: `python -m devstack.openapi --write F`.

Each function's main.py is loaded the way functions-framework loads it (by path), so the
merged document is exactly what the functions serve at /api/<name>/openapi.json."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from functions.registry import FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]


def function_document(name: str) -> dict[str, Any]:
    path = ROOT / "functions" / name / "main.py"
    spec = importlib.util.spec_from_file_location(f"valorize_function_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    document: dict[str, Any] = module.app.openapi()
    return document


def merged_document() -> dict[str, Any]:
    from valorize.entrypoints.openapi import merge

    return merge([function_document(name) for name in FUNCTIONS])


def render() -> str:
    return json.dumps(merged_document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="write the merged document to this file")
    args = parser.parse_args()
    text = render()
    if args.write:
        target = args.write if args.write.is_absolute() else ROOT / args.write
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
