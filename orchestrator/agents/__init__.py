"""Agents behind one small protocol (base.Agent); `open_agent` picks and opens one per build."""
