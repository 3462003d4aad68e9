"""The README's table of library versions, read from requirements.lock (never typed by hand).

    python .ci/versions_table.py --write    rewrite the table between its markers (bash .ci/lock runs this)
    python .ci/versions_table.py            print it; exit 1 when the README's differs (the tests run this)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ["torch", "torchaudio", "pytorch-lightning", "hydra-core", "mlflow", "numpy", "scipy", "librosa",
         "soundfile", "soxr", "h5py", "scikit-learn", "transformers"]
BEGIN = "<!-- versions: written from requirements.lock by bash .ci/lock -->"
END = "<!-- /versions -->"


def locked() -> dict:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def table() -> str:
    pins = locked()
    missing = [name for name in SHOWN if name not in pins]
    if missing:
        sys.exit(f"error: requirements.lock pins none of {', '.join(missing)}: refresh it with bash .ci/lock")
    rows = "\n".join(f"| {name} | {pins[name]} |" for name in SHOWN)
    return f"{BEGIN}\n| library | version |\n|---|---|\n{rows}\n{END}"


def main() -> int:
    readme = (ROOT / "README.md").read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        sys.exit(f"error: README.md has no versions table between {BEGIN} and {END}")
    current = pattern.search(readme).group(0)
    if "--write" in sys.argv:
        (ROOT / "README.md").write_text(pattern.sub(lambda _: table(), readme))
        return 0
    print(table())
    if current != table():
        print("README.md's versions table differs from requirements.lock: python .ci/versions_table.py --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
