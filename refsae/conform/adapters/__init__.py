"""Built-in adapters of the peer SAE libraries (CONF-6). Each module imports its library only when an
adapter is instantiated, so that refsae imports without them; each library is installed in its own
venv by `nox -s "conformance(library='NAME')"` (conformance/NAME/requirements.txt)."""
