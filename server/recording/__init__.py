"""The whole call recorded when the patient consented (O4): what is taken from the room's
media (one neutral layout, every voice) and when; filing lives in :mod:`server.archive`."""
