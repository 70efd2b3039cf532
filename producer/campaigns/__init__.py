"""Campaigns: one template, a recipient list, a job per recipient (`mailfleet campaign`)."""
