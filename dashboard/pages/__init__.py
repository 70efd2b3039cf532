"""One module per page; each route reads through the CLI tools' own code."""
