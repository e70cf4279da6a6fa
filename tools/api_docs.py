"""Builds the HTML API reference of tftransfer from its docstrings with pdoc; any warning
is an error.

    python -m tools.api_docs --output_dir build/api     # or: make docs

Every module of the package is documented (``tftransfer`` and each module under it, found
on disk, so a subpackage's ``__all__`` does not hide its modules), Google-style docstrings
(``Args:``, ``Returns:``, ``Raises:``) with reStructuredText roles (``:func:``,
``:class:``). pdoc imports each module, so the extras must be installed
(``pip install -e .[test]``). Exits 1, listing them, when pdoc or the imports warn (a
module that fails to import, a docstring pdoc cannot parse), 2 when pdoc is missing.
"""
import argparse
import os
import pathlib
import pkgutil
import re
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "tftransfer"
# Warnings that are not about this package's docstrings, each with its reason; any other
# warning fails the build.
IGNORED = (
    # tensorflow_datasets' BuilderConfig (the base of the tfds builders' configs) annotates
    # its dataclass fields with strings ("utils.VersionOrStr") that name modules of its
    # own, which pdoc cannot evaluate from the subclass's module; they are shown as written.
    re.compile(r"Error parsing type annotation (list\[)?utils\.VersionOrStr"),
)
INSTALL_HINT = ("pdoc is not installed: install the test extra (pip install -e .[test]) or "
                "pip install pdoc.")


def module_names(root=ROOT, package=PACKAGE):
    """``package`` and every module and subpackage under it, sorted, from the source tree."""
    path = os.path.join(root, package)
    return [package] + sorted(info.name for info in
                              pkgutil.walk_packages([path], prefix=package + "."))


def build(output_dir, modules=None):
    """Writes the HTML reference of ``modules`` (default :func:`module_names`) into
    ``output_dir``; returns the warnings raised meanwhile, as strings.

    Raises:
      ModuleNotFoundError: pdoc is not installed (message: how to install it).
    """
    try:
        import pdoc
        import pdoc.doc
        import pdoc.render
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(INSTALL_HINT, name="pdoc") from error
    if ROOT not in sys.path[:1]:
        sys.path.insert(0, ROOT)  # this checkout, not another installed copy
    # pdoc blocks subprocesses while importing; platform.uname() (TensorFlow's imports)
    # then warns. The modules documented are this package's own.
    os.environ.setdefault("PDOC_ALLOW_EXEC", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pdoc.render.configure(docformat="google", show_source=False,
                          footer_text=f"{PACKAGE} API reference")
    names = modules or module_names()
    output = pathlib.Path(output_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # pdoc.pdoc(), with the module list given: pdoc's own walk follows each package's
        # __all__, which hides modules such as tftransfer.models.small_resnet.
        documented = {name: pdoc.doc.Module.from_name(name) for name in names}
        for module in documented.values():
            materialise_lazy_names(module.obj)
        for module in documented.values():
            page = output / (module.fullname.replace(".", "/") + ".html")
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(pdoc.render.html_module(module, documented), encoding="utf-8")
        (output / "index.html").write_text(pdoc.render.html_index(documented),
                                           encoding="utf-8")
        (output / "search.js").write_text(pdoc.render.search_index(documented),
                                          encoding="utf-8")
    return [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
            if not any(pattern.search(str(w.message)) for pattern in IGNORED)]


def materialise_lazy_names(module):
    """Sets, on ``module``, the names of its ``__all__`` that its PEP 562 ``__getattr__``
    provides on first access: pdoc reads a module's ``__dict__``, where they are not yet."""
    if "__getattr__" not in vars(module):
        return
    for name in getattr(module, "__all__", ()):
        if name not in vars(module):
            try:
                setattr(module, name, getattr(module, name))
            except AttributeError:
                pass  # pdoc warns that it does not resolve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=os.path.join("build", "api"),
                        help="Directory of the HTML pages (created).")
    args = parser.parse_args(argv)
    try:
        problems = build(args.output_dir)
    except ModuleNotFoundError as error:
        if error.name != "pdoc":
            raise
        print(error, file=sys.stderr)
        return 2
    if problems:
        print(f"API reference: {len(problems)} warning(s), which are errors:", file=sys.stderr)
        for problem in problems:
            print("  " + problem, file=sys.stderr)
        return 1
    print(f"API reference of {PACKAGE} written to {args.output_dir}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
