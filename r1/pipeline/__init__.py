"""Recipes: stage graphs that write one run folder each."""
