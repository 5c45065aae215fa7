"""The local web studio (`vitrestore studio`): server.py serves static/ and the JSON API."""
