"""Make sure Debian's Chromium is installed for the portal's browser test (`nox -s tests` calls
this first; CI and fresh machines get it the same way).

`/usr/bin/chromium` present: nothing to do. Missing and running as root on a machine with
apt-get: `apt-get update` and `apt-get install -y chromium`, saying so. Otherwise one line
says how to install it, and the browser test skips (unless MESHOPS_REQUIRE_BROWSER is set,
when it fails). Playwright drives it with `executable_path`: `playwright install` is never
used (it downloads a browser build of its own).

Usage: python tools/browser.py [--check]   (--check: report only, install nothing)
Exit status: 0 when Chromium is there at the end, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
PACKAGE = "chromium"


def present() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def can_install() -> tuple[bool, str]:
    """Whether this process can install Debian's package, and why not when it cannot."""
    if sys.platform != "linux" or shutil.which("apt-get") is None:
        return False, "no apt-get here (not Debian or Ubuntu)"
    if os.geteuid() != 0:
        return False, "not root"
    return True, ""


def install() -> bool:
    """apt-get update and install chromium, printing what it runs; whether it is there after."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE],
    ):
        print(f"browser: {' '.join(command)}", flush=True)
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            print(f"browser: {command[1]} failed with exit status {done.returncode}")
            return False
    return present()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only, install nothing")
    args = parser.parse_args(argv)
    if present():
        print(f"browser: {CHROMIUM} is installed")
        return 0
    allowed, why = can_install()
    if args.check or not allowed:
        reason = "--check" if args.check else why
        print(
            f"browser: {CHROMIUM} missing ({reason}): `sudo apt-get install chromium` "
            "runs the portal's browser test"
        )
        return 1
    if install():
        print(f"browser: {CHROMIUM} installed")
        return 0
    print(f"browser: could not install {PACKAGE}; the portal's browser test will skip")
    return 1


if __name__ == "__main__":
    sys.exit(main())
