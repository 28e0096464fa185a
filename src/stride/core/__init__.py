"""Stride's pure core: clinical rules as plain functions over plain data.

Nothing under ``stride.core`` imports Django (a test enforces it), so each
rule can be read on its own and tested in milliseconds. Models, forms, views
and commands call these functions; they never re-implement them.
"""
