"""Every routine task: `nox -s dev`, `nox -s tests`, `nox -s verify`, `nox -s chaos`,
`nox -s hostile`, `nox -s reliability`, `nox -s lint`, `nox -s typecheck`, `nox -s openapi`,
`nox -s package -- <function>|all`, `nox -s infra`, `nox -s bench -- <name>`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
DEV = ["-r", "requirements-dev.txt"]
INFRA = ["-r", "infra/cdktf/requirements.txt"]


@nox.session(python=PYTHON)
def dev(session: nox.Session) -> None:
    """Start the whole local stack: emulators, Redis, SMTP sink, every function, the gateway
    on http://127.0.0.1:8080 and demo data. Ctrl-C stops everything."""
    session.install(*DEV)
    # Ctrl-C reaches nox and the stack together; give the stack time to stop what it started
    # (nox's default would SIGKILL it after 0.5 s and orphan the emulators).
    session.run("python", "-m", "devstack", "up", *session.posargs, interrupt_timeout=60)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole suite: unit, integration (emulators), end-to-end (HTTP through the
    functions), the artifacts (every function's shipped archive in a fresh virtualenv) and the
    infra/cdktf synthesis. Starts and stops its own emulators on free ports."""
    session.install(*DEV, *INFRA)
    session.run("python", "-m", "pytest", *(session.posargs or ["tests"]))


@nox.session(python=PYTHON)
def verify(session: nox.Session) -> None:
    """The integrity check: balances, counts, read models and transfer links recomputed from
    every user's transactions in the running `nox -s dev` stack (or `-- --user <id>`,
    `-- --email <e>`); exits 1 on any drift. Only reads."""
    session.install(*DEV)
    session.run("python", "-m", "devstack", "verify", *session.posargs)


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The fault suite (load/chaos.py): Redis killed and restarted, the Firestore emulator
    stalled, the transactions function killed, under read and write load; the ingest worker
    killed mid-import and mid-commit, the automate worker mid-run; lost and duplicated
    effects counted, the integrity check run after each; writes load/results/chaos.md.
    `-- --scenarios redis,ingest --outage 30`."""
    session.install(*DEV)
    session.run("python", "load/chaos.py", *session.posargs)


@nox.session(python=PYTHON)
def package(session: nox.Session) -> None:
    """Build the archives that ship: `nox -s package -- all` or `-- ingest rules` writes
    dist/functions/<name>.zip (main.py, the vendored shared package, a requirements.txt with
    nothing from the repository tree). Standard library only: nothing to install."""
    session.run("python", "-m", "functions.package", *(session.posargs or ["all"]))


@nox.session(python=PYTHON)
def infra(session: nox.Session) -> None:
    """Synthesize the CDK for Terraform stack into infra/cdktf/cdktf.out."""
    session.install(*INFRA)
    session.chdir("infra/cdktf")
    session.run("python", "main.py")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy, strict on shared/."""
    session.install(*DEV)
    session.run("mypy")


@nox.session(python=PYTHON)
def openapi(session: nox.Session) -> None:
    """Write the merged OpenAPI document to openapi/openapi.json."""
    session.install(*DEV)
    session.run("python", "-m", "devstack.openapi", "--write", "openapi/openapi.json")


@nox.session(python=PYTHON)
def hostile(session: nox.Session) -> None:
    """The hostile-input suite's long run: schemathesis over every operation of the merged
    OpenAPI document with many examples (`-- --examples N`, default 100 per operation and
    mode) on a fresh stack; writes its figures (operations, requests, 5xx, check failures)
    to load/results/reliability.md. The suite runs the same test bounded."""
    session.install(*DEV)
    session.run("python", "load/hostile.py", *session.posargs)


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """Every fault and hostile-input run, then one summary against the targets: the
    hostile-input run, the fault suite, the queue drain (load/drain.py, when present) and
    the IDOR sweep and log audit; writes the summary atop load/results/reliability.md
    (`-- --examples 100 --skip hostile,chaos,drain,leaks`; ~20 min with everything)."""
    session.install(*DEV)
    session.run("python", "load/reliability.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks in load/: `nox -s bench -- coldstart`."""
    session.install(*DEV)
    names = session.posargs or ["coldstart"]
    for name in names:
        session.run("python", f"load/{name}.py")
