"""Dock panels of the main window: library, labelling (and later matching, evaluation, identify)."""
