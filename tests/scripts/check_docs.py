#!/usr/bin/env python3
"""The README and docs/ say only what exists: every relative link resolves (a file, or a heading of
it when the link has an anchor), and every command quoted in a ```sh block names a driver that the
build has, a script that the repository has, and options that the driver's --help (or the script's
text) lists.

    check_docs.py --build BUILD_DIR   (run from the repository root; exit 1 naming each problem)
"""
import argparse
import glob
import os
import re
import shlex
import subprocess
import sys

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
OPTION = re.compile(r"^--[a-z0-9][a-z0-9-]*")


def anchors(path):
    """GitHub's heading anchors of a markdown file."""
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^#+\s+(.*)", line)
            if m:
                text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
                out.add(text.replace(" ", "-"))
    return out


def commands(path):
    """The command lines of a file's ```sh blocks (continuations joined, comments dropped)."""
    lines, inside, cur = [], False, ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            s = raw.rstrip("\n")
            if s.strip().startswith("```"):
                inside = s.strip() in ("```sh", "```bash", "```shell") if not inside else False
                continue
            if not inside:
                continue
            s = s.split(" #")[0] if not s.lstrip().startswith("#") else ""
            if not s.strip():
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            lines.append(cur + s)
            cur = ""
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    files = ["README.md"] + sorted(glob.glob("docs/*.md"))
    problems, helps, checked_links, checked_commands = [], {}, 0, 0
    for md in files:
        base = os.path.dirname(md)
        text = open(md, encoding="utf-8").read()
        for m in LINK.finditer(text):
            target = m.group(1) or m.group(2)
            if re.match(r"^[a-z]+:", target):
                continue
            checked_links += 1
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(base, file_part)) if file_part else md
            if not os.path.exists(dest):
                problems.append(f"{md}: the link '{target}' names '{dest}', which does not exist")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                problems.append(f"{md}: the link '{target}' names a heading '#{anchor}' that '{dest}' does not have")
        for line in commands(md):
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            program = next((w for w in words if w.startswith("build/drivers/") or w.startswith("scripts/")), None)
            if program is None:
                continue
            checked_commands += 1
            options = [OPTION.match(w).group(0) for w in words[words.index(program) + 1:] if OPTION.match(w)]
            if program.startswith("build/drivers/"):
                binary = os.path.join(args.build, "drivers", os.path.basename(program))
                if not os.path.exists(binary):
                    problems.append(f"{md}: '{line.strip()}' runs {program}, which the build does not have")
                    continue
                if binary not in helps:
                    helps[binary] = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60).stdout
                known = helps[binary]
            else:
                if not os.path.exists(program):
                    problems.append(f"{md}: '{line.strip()}' runs {program}, which does not exist")
                    continue
                known = open(program, encoding="utf-8", errors="replace").read()
            for o in options:
                if not re.search(re.escape(o) + r"(?![a-z0-9-])", known):
                    problems.append(f"{md}: '{line.strip()}' gives {o}, which {program} does not take")
    for p in problems:
        print(p)
    print(f"check_docs: {len(files)} files, {checked_links} relative links, {checked_commands} commands: "
          f"{'ok' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
