"""Test helpers that drive a real headless Chromium (the one kaleido uses) over the DevTools
protocol with ``choreographer`` (a kaleido dependency): find the browser or skip, and open a page
collecting its console errors, uncaught exceptions, failed loads and network requests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SETUP_HINT = "run scripts/setup.sh as root (it installs Debian's chromium with apt-get), or set BROWSER_PATH"


def chromium_or_skip() -> str:
    """The Chromium mechsel finds for kaleido. Without one: skip where none can be installed
    (no ``apt-get`` or not root); fail where ``scripts/setup.sh`` would have installed one (CI)."""
    from mechsel.plots import chromium_path

    path = chromium_path()
    if path:
        return path
    if shutil.which("apt-get") and os.geteuid() == 0:
        pytest.fail(f"No Chromium found although this machine could install one: {SETUP_HINT}.")
    pytest.skip(f"No Chromium found and none can be installed here (no apt-get or not root): {SETUP_HINT}.")


@dataclass
class PageLoad:
    """What happened while a page loaded and drew."""

    errors: list[str] = field(default_factory=list)
    """Console errors and assertions, uncaught exceptions, and browser log entries of level error."""
    requests: list[str] = field(default_factory=list)
    """Every URL the page requested."""
    probe: Any = None
    """The value of the probe expression once it held (or at the timeout)."""


async def _load(browser_path: str, url: str, probe: str, until: str, timeout: float) -> PageLoad:
    from choreographer import Browser

    out = PageLoad()

    async def on_console(msg: Any) -> None:
        p = msg["params"]
        if p.get("type") in ("error", "assert"):
            out.errors.append(
                "console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            )

    async def on_exception(msg: Any) -> None:
        d = msg["params"]["exceptionDetails"]
        out.errors.append("uncaught: " + str(d.get("exception", {}).get("description") or d.get("text")))

    async def on_log(msg: Any) -> None:
        e = msg["params"]["entry"]
        if e.get("level") == "error":
            out.errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())

    async def on_request(msg: Any) -> None:
        out.requests.append(msg["params"]["request"]["url"])

    # every request outside the page goes to a closed local port: a page that needs the network fails
    async with Browser(path=browser_path, headless=True, proxy_server="127.0.0.1:9") as browser:
        tab = await browser.create_tab("")
        tab.subscribe("Runtime.consoleAPICalled", on_console)
        tab.subscribe("Runtime.exceptionThrown", on_exception)
        tab.subscribe("Log.entryAdded", on_log)
        tab.subscribe("Network.requestWillBeSent", on_request)
        for domain in ("Runtime", "Log", "Network", "Page"):
            await tab.send_command(f"{domain}.enable")
        loaded = tab.subscribe_once("Page.loadEventFired")
        await tab.send_command("Page.navigate", params={"url": url})
        await asyncio.wait_for(loaded, timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            reply = await tab.send_command("Runtime.evaluate", params={"expression": probe, "returnByValue": True})
            out.probe = json.loads(reply["result"]["result"]["value"])
            done = await tab.send_command("Runtime.evaluate", params={"expression": until, "returnByValue": True})
            if done["result"]["result"].get("value") is True or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
    return out


def load_page(path: Path, *, probe: str, until: str = "true", timeout: float = 60.0) -> PageLoad:
    """Open ``path`` in headless Chromium with no network, wait for its load event and then until
    the JavaScript expression ``until`` is true (or ``timeout``), and return what happened; ``probe``
    is a JavaScript expression returning a JSON string, evaluated last."""
    return asyncio.run(_load(chromium_or_skip(), path.resolve().as_uri(), probe, until, timeout))
