"""Demonstrators: scripted or planned experts that act on PolyTask dict observations."""
