"""Synthesize the ValorizeAI stack: ``python main.py`` writes ``cdktf.out/stacks/valorize``.

Environment:
  CDKTF_OUTDIR               where to write (default: cdktf.out in the current directory)
  VALORIZE_TF_STATE_BUCKET   GCS bucket for remote state; local state when unset
"""

from __future__ import annotations

import os

# Must be set before jsii starts its Node process. jsii >= 1.14x treats Node 20 as end-of-life
# and only the END_OF_LIFE variable (a list of major versions) quiets that banner; the
# DEPRECATED one covers older jsii releases that merely called Node 20 deprecated.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cdktn import App

from stack import ValorizeStack

STACK_NAME = "valorize"


def main() -> None:
    app = App(outdir=os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    ValorizeStack(app, STACK_NAME, state_bucket=os.environ.get("VALORIZE_TF_STATE_BUCKET"))
    app.synth()


if __name__ == "__main__":
    main()
