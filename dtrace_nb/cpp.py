"""dtrace(1)'s -C: the program run through the system C preprocessor first, with -I, -D,
-U (and -H, which lists the files included), as libdtrace runs cpp(1).

The preprocessed text keeps the script's own line numbers: cpp's `# N "file"` markers
say where each output line came from, and every line of the script lands on its own line
number again (the lines an #include brings in are joined onto the line of the #include),
so a D error points at the line the user wrote.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from typing import Optional

from dtrace_nb.errors import DOptionError, DPreprocessorError, DUsageError

# What libdtrace defines for every cpp run (dt_open.c), on a 64-bit Linux x86 host.
_PREDEFINED = ("-D__linux", "-D__unix", "-D__SVR4", "-D__SUNW_D=1", "-U__GNUC__",
               "-D__SUNW_D_64", "-D__Linux", "-D__amd64", "-D__SUNW_D_VERSION=0x02000000")
_MAIN = "<stdin>"
_MESSAGE_PLACE = re.compile(r"^<stdin>:(\d+):(?:\d+:)?", re.M)
_MARKER = re.compile(r'#\s*(?:line\s+)?(\d+)\s+"((?:[^"\\]|\\.)*)"[ \t\d]*$')


def add_options(p: argparse.ArgumentParser) -> None:
    """The preprocessor's options of dtrace(1)."""
    p.add_argument("-C", dest="cpp", action="store_true",
                   help="run the C preprocessor (cpp) over the program first")
    p.add_argument("-D", dest="cpp_defines", action="append", default=[],
                   metavar="NAME[=VALUE]", help="with -C: define NAME for the preprocessor")
    p.add_argument("-U", dest="cpp_undefines", action="append", default=[], metavar="NAME",
                   help="with -C: undefine NAME for the preprocessor")
    p.add_argument("-I", dest="cpp_includes", action="append", default=[], metavar="DIR",
                   help="with -C: search DIR for #include files")
    p.add_argument("-H", dest="cpp_list_includes", action="store_true",
                   help="with -C: print the name of each file included, on stderr")


# -x options that set the preprocessor up, as their -C -D -U -I counterparts do
_X_OPTIONS = ("cpp", "cpphdrs", "define", "undef", "incdir", "stdc")


def take_x_options(ns: argparse.Namespace) -> None:
    """Move `-x cpp`, `-x cpphdrs`, `-x define=`, `-x undef=`, `-x incdir=` and `-x stdc=`
    out of the DTrace options into the preprocessor's (they act before the program is read)."""
    kept = []
    for opt in getattr(ns, "options", None) or []:
        name, eq, value = opt.partition("=")
        if name not in _X_OPTIONS:
            kept.append(opt)
        elif name == "cpp":
            ns.cpp = True
        elif name == "cpphdrs":
            ns.cpp_list_includes = True
        elif name == "stdc":
            if value not in ("a", "c", "s", "t"):
                raise DOptionError(f"-x stdc={value}: the value is one of a, c, s, t",
                                   dtrace="failed to set -x stdc: Invalid value for specified "
                                          "option")
            ns.cpp_stdc = value
        elif not eq or not value:
            raise DOptionError(f"-x {name} needs a value",
                               dtrace=f"failed to set -x {name}: Invalid value for specified "
                                      "option")
        else:
            {"define": ns.cpp_defines, "undef": ns.cpp_undefines,
             "incdir": ns.cpp_includes}[name].append(value)
    if hasattr(ns, "options"):
        ns.options = kept


def cpp_arguments(ns: argparse.Namespace) -> list[str]:
    # -x stdc=s is K&R C (cpp -traditional-cpp); a, c and t are ISO C
    args = ["-traditional-cpp" if getattr(ns, "cpp_stdc", "a") == "s" else "-std=c99"]
    args += _PREDEFINED
    args += [f"-D{d}" for d in getattr(ns, "cpp_defines", None) or []]
    args += [f"-U{u}" for u in getattr(ns, "cpp_undefines", None) or []]
    args += [f"-I{i}" for i in getattr(ns, "cpp_includes", None) or []]
    if getattr(ns, "cpp_list_includes", False):
        args.append("-H")
    return args


def maybe_preprocess(ns: argparse.Namespace, text: str) -> str:
    """`text` preprocessed when -C was given (once per namespace: the shells may ask for
    the program text again to show an error), else `text` unchanged."""
    take_x_options(ns)
    if not getattr(ns, "cpp", False):
        return text
    done = getattr(ns, "_cpp_done", None)
    if done is not None and done[0] == text:
        return done[1]
    out = preprocess(text, cpp_arguments(ns))
    ns._cpp_done = (text, out)
    return out


def preprocess(text: str, args: list[str], cpp: Optional[str] = None) -> str:
    """`text` through cpp with `args`; its diagnostics (and -H's list) go to stderr as cpp
    prints them. A failure is a usage error naming cpp's first complaint."""
    cpp = cpp or shutil.which("cpp")
    if cpp is None:
        raise DUsageError("-C needs the C preprocessor, and no 'cpp' is on PATH",
                          hint="install it (Debian: apt-get install cpp)")
    try:
        run = subprocess.run([cpp, *args, "-"], input=text, capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DUsageError(f"could not run {cpp}: {exc}") from None
    # cpp's own messages (errors, warnings, -H's list of included files) as dtrace shows
    # them: the program is cpp's /dev/stdin there, and lines carry no column
    _forward(_MESSAGE_PLACE.sub(r"/dev/stdin:\1:", run.stderr))
    if run.returncode != 0:
        raise DPreprocessorError("Preprocessor failed to process input program")
    return restore_lines(run.stdout)


def _forward(stderr: str) -> None:
    import sys

    if stderr:
        sys.stderr.write(stderr if stderr.endswith("\n") else stderr + "\n")
        sys.stderr.flush()




def restore_lines(output: str) -> str:
    """cpp's output with its line markers taken out and each line of the main file put
    back at its own line number."""
    lines: list[str] = []  # lines[i] is line i + 1 of the result
    in_main, next_line = True, 1
    for raw in output.split("\n"):
        marker = _MARKER.match(raw)
        if marker:
            in_main = marker.group(2) == _MAIN
            if in_main:
                next_line = int(marker.group(1))
            continue
        if in_main:
            while len(lines) < next_line - 1:
                lines.append("")
            if len(lines) >= next_line:  # cpp output ran ahead: keep it on this line
                lines[-1] = f"{lines[-1]} {raw}" if raw.strip() else lines[-1]
            else:
                lines.append(raw)
            next_line += 1
        elif raw.strip():
            # An included file's line: joined onto the line of the #include.
            while len(lines) < next_line:
                lines.append("")
            lines[next_line - 1] = f"{lines[next_line - 1]} {raw}".lstrip(" ")
    return "\n".join(lines) + "\n"
