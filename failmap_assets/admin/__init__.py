"""What an operator runs on a deployment, beside the pipeline: ``failmap warm`` (compile
every Numba kernel into Numba's cache before the first run) and ``failmap doctor``
(check a deployment's configuration end to end). Top layer, like ``cli.py``."""
