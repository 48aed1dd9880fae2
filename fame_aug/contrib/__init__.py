"""Companion code built on fame_aug: reference training and evaluation loops."""
