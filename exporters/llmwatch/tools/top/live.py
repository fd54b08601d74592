"""The live view: a full-screen rich.Live redrawn on every new snapshot and every key.

rich draws but reads no keys, so the terminal is put in cbreak mode and stdin is read here
directly (a few keys do not earn textual's dependency tree). A thread reads Prometheus every
``interval`` seconds and wakes the loop through a pipe, so a slow or unreachable Prometheus
never holds up ``q``.

Keys: ``tab`` next pane (all, models, GPUs, alerts), ``s`` next sort of the pane shown, ``/``
filter by model, container or GPU (Enter keeps it, Esc clears it), ``q`` quits.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import time
import tty

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from llmwatch.tools.top import render
from llmwatch.tools.top.snapshot import Snapshot
from llmwatch.tools.top.source import Reader, Unavailable

KEYS_HELP = "tab pane · s sort · / filter · q quit"


class Refresher(threading.Thread):
    """Reads a snapshot every ``interval`` seconds; the latest result (or error line) is kept."""

    def __init__(self, reader: Reader, interval: float, wake_fd: int):
        super().__init__(name="top-refresh", daemon=True)
        self.reader, self.interval, self.wake_fd = reader, interval, wake_fd
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None
        self.error: str | None = None
        self.last_ok: float | None = None

    def refresh(self) -> None:
        """One read: a snapshot replaces the last one; a failure keeps it and sets the error line."""
        try:
            snap, error = self.reader.read(), None
        except Unavailable as e:
            snap, error = None, str(e)
        with self.lock:
            if snap is not None:
                self.snapshot, self.last_ok = snap, time.time()
            self.error = error

    def run(self) -> None:
        while not self.stop.is_set():
            self.refresh()
            try:
                os.write(self.wake_fd, b".")
            except OSError:  # the view has closed its pipe: quitting
                return
            self.stop.wait(self.interval)


def screen(refresher: Refresher, view: render.View, typing: bool, interval: float):
    with refresher.lock:
        snap, error, last_ok = refresher.snapshot, refresher.error, refresher.last_ok
    parts = []
    if error:
        parts.append(render.status_line(error, interval, last_ok))
    if snap is not None:
        parts.append(render.snapshot_view(snap, view))
    elif not error:
        parts.append(Text(f"reading {refresher.reader.url} ..."))
    footer = Text(f"[{view.pane}] {KEYS_HELP}", style="dim")
    if typing or view.filter:
        footer.append(f"   filter: {view.filter}" + ("_" if typing else ""), style="bold")
    parts.append(footer)
    return Group(*parts)


def run(reader: Reader, interval: float, console: Console) -> int:
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    wake_read, wake_write = os.pipe()
    refresher = Refresher(reader, interval, wake_write)
    view, typing = render.View(), False
    try:
        tty.setcbreak(fd)
        refresher.start()
        with Live(screen(refresher, view, typing, interval), console=console, screen=True,
                  auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live:
            while True:
                ready, _, _ = select.select([fd, wake_read], [], [], 1.0)
                if wake_read in ready:
                    os.read(wake_read, 1024)
                if fd in ready:
                    keys = os.read(fd, 64).decode(errors="ignore")
                    if keys.startswith("\x1b") and len(keys) > 1:  # arrows and other sequences
                        keys = ""
                    for key in keys:
                        if typing:
                            if key in "\r\n":
                                typing = False
                            elif key == "\x1b":
                                typing, view.filter = False, ""
                            elif key in "\x7f\b":
                                view.filter = view.filter[:-1]
                            elif key.isprintable():
                                view.filter += key
                        elif key == "q":
                            return 0
                        elif key == "\t":
                            view.next_pane()
                        elif key == "s":
                            view.next_sort()
                        elif key == "/":
                            typing, view.filter = True, ""
                        elif key == "\x1b":
                            view.filter = ""
                live.update(screen(refresher, view, typing, interval), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        refresher.stop.set()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        os.close(wake_read)
        os.close(wake_write)
