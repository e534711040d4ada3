"""Local, stateful HTTP emulators of the Bitrix24 REST API and the Google Calendar API.

Nothing here imports from the bridge: the emulators follow the reference notes, not our code.
"""
