"""The language server: pygls wiring (server.py), the custom protocol and its payload shapes
(protocol.py), the Python-file features (python_files.py), conversion to LSP types
(convert.py), options (options.py) and which checkpoints open documents link
(linked_checkpoints.py). Nothing here reads checkpoints or Python source itself."""
