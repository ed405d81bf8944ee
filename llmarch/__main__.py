"""`python -m llmarch` runs the command-line interface."""

from llmarch.cli import main

main()
