#!/usr/bin/env python3
"""Runs a command with its stderr on a pseudo-terminal and prints what it
wrote there, with the terminal controls made visible: <CR> for \\r, <EL>
for the erase-line sequence ESC [ K. stdin and stdout stay as given (with
--stdout-too, stdout goes to the same terminal), so a test can tell what
reaches a terminal from what reaches a pipe.

usage: stderr_on_terminal.py [--stdout-too] COMMAND [ARG...]
"""
import os
import pty
import subprocess
import sys


def main():
    command = sys.argv[1:]
    stdout_too = command[0] == "--stdout-too"
    if stdout_too:
        command = command[1:]
    master, slave = pty.openpty()
    child = subprocess.Popen(command, stderr=slave,
                             stdout=slave if stdout_too else None)
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end.
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    text = seen.decode("utf-8", "replace")
    # The terminal turns \n into \r\n on output.
    text = text.replace("\r\n", "\n").replace("\r", "<CR>").replace("\x1b[K", "<EL>")
    sys.stdout.write(text + "\n")
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
