"""Where the browser tests find headless Chromium, and how they start it on this closed network."""

from __future__ import annotations

import os
import shutil

CHROMIUM = os.environ.get("PARAEXEC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
NO_CHROMIUM = f"no Chromium at {CHROMIUM} (install Debian's chromium)"

#: Headless, no sandbox (root), and no background traffic: the machine reaches no other hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
