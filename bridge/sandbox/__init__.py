"""Local, stateful HTTP emulators of the Bitrix24 REST API (`bitrix/`) and the Google Calendar API
(`google/`), and `server.py`, which serves either on a thread.

Nothing here imports from the bridge: the emulators follow the reference notes, not our code.
"""
