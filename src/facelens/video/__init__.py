"""Cameras and video: sources, tracks, events and their delivery."""
