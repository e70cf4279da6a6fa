"""The commands of tftransfer (``tftransfer train|select|convert|fisher|prepare|...``, see
:mod:`tftransfer_cli.main`). Apart from the library: ``tftransfer`` never imports this
package (an import-linter contract in pyproject.toml)."""
