"""``--help`` of the absl programs (the driver, the demo, the studies), in one place.

``help.run(main, usage)`` replaces ``app.run(main)``. ``--help``, ``-h``, ``-?`` and
``--helpshort`` print the first line of the program's docstring, ``usage`` (the command
line and an example; by default the docstring's indented ``python ...`` lines), and the
program's own flags, grouped by section, each with its help and default; then exit 0,
before the other flags are parsed (nothing else is checked or run). The program's own flags are absl's *key flags* of its module: the flags it defines
and those it declares with ``key_flags`` (e.g. the driver's, defined by
:mod:`tftransfer.training.flags`). A section is the module that defined a flag, shortened
to what the sections do not share (``[model]``, ``[data.synthetic]`` for
``tftransfer.training.config.model``, ``tftransfer.training.config.data.synthetic``).
``--helpfull`` prints absl's listing of every flag (absl's, TensorFlow's, ...) and exits 0
too. Any other command line is parsed by absl as ``app.run`` would; an ``app.UsageError``
raised by ``main`` prints its message and ``Pass --help to see the flags.`` on stderr (not
absl's listing of every key flag) and exits with its ``exitcode`` (1 by default).
"""
import functools
import sys

from absl import app, flags

FLAGS = flags.FLAGS
HELP = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
HELPFULL = ("--helpfull", "-helpfull")


def module_name(main):
    """The name absl files the flags of ``main``'s module under (the script's path when it
    runs as ``__main__``)."""
    name = main.__module__
    return sys.argv[0] if name == "__main__" else name


def _title(module, main_module):
    if module == main_module and "__main__" in sys.modules:
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is not None:  # python -m experiments.cpu_study: its package's name
            return spec.name[:-len(".__main__")] if spec.name.endswith(".__main__") \
                else spec.name
    return module


def sections(module, flag_values=FLAGS):
    """``[(title, [Flag])]``: the key flags of ``module`` by defining module, in the order
    they were defined."""
    groups = {}
    for flag in flag_values.get_key_flags_for_module(module):
        if flag.name not in flag_values or flag_values[flag.name] is not flag:
            continue  # deleted or redefined since it was declared key (as absl skips it)
        groups.setdefault(flag_values.find_module_defining_flag(flag.name), []).append(flag)
    titles = [_title(m, module) for m in groups]
    if len(titles) > 1:  # drop the dotted prefix every title shares
        parts = [t.split(".") for t in titles]
        common = 0
        while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
            common += 1
        titles = [".".join(p[common:]) for p in parts]
    return list(zip(titles, groups.values()))


def _render(flag, width):
    name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
    lines = [flags.text_wrap(f"{name}: {flag.help}", width, indent="    ",
                             firstline_indent="  ")]
    if flag.default_as_str:
        lines.append(flags.text_wrap(f"(default: {flag.default_as_str})", width,
                                     indent="    "))
    if flag.parser.syntactic_help:
        lines.append(flags.text_wrap(f"({flag.parser.syntactic_help})", width,
                                     indent="    "))
    return "\n".join(lines)


def default_usage(doc):
    """``Usage:`` and the command lines of a docstring (its lines indented ``python ...``)."""
    commands = [line for line in doc.splitlines() if line.startswith("    python ")]
    return "\n".join(["Usage:"] + commands) if commands else ""


def help_text(main, usage=None, flag_values=FLAGS, width=None):
    """The ``--help`` text of the program whose ``main`` is ``main``."""
    width = width or min(flags.get_help_width(), 100)
    doc = sys.modules[main.__module__].__doc__ or ""
    usage = default_usage(doc) if usage is None else usage
    out = [doc.strip().split("\n")[0], "", usage.strip(), "",
           "Flags (--helpfull: every flag, also absl's and TensorFlow's):"]
    for title, group in sections(module_name(main), flag_values):
        out += ["", f"[{title}]"] + [_render(f, width) for f in group]
    return "\n".join(out) + "\n"


def _asks(argv, names):
    args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    return any(a in names for a in args)


def parser(main, usage=None, flag_values=FLAGS):
    """A ``flags_parser`` for ``app.run``: help as above, else absl's own parsing."""
    def parse(argv):
        full = _asks(argv, HELPFULL)
        if full or _asks(argv, HELP):
            try:
                if full:
                    app.usage(shorthelp=False, writeto_stdout=True)
                else:
                    sys.stdout.write(help_text(main, usage, flag_values))
                sys.stdout.flush()
            except BrokenPipeError:  # `--help | head`
                pass
            sys.exit(0)
        return app.parse_flags_with_usage(argv)
    return parse


def short_usage_errors(main):
    """``main`` whose ``app.UsageError`` prints its message, not the flags, then exits."""
    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except app.UsageError as error:
            sys.stderr.write(f"{error}\nPass --help to see the flags.\n")
            sys.exit(error.exitcode)
    return wrapped


def run(main, usage=None, key_flags=(), flag_values=FLAGS):
    """``app.run(main)`` with the help above; ``key_flags`` (names of flags defined
    elsewhere) are listed as the program's own, next to those its module defines."""
    for name in key_flags:
        flag_values.register_key_flag_for_module(module_name(main), flag_values[name])
    app.run(short_usage_errors(main), flags_parser=parser(main, usage, flag_values))
