"""Shared notes of a consultation: several experts type at once, nothing typed is lost."""
