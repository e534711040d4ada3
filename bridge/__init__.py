"""Mirror Bitrix24 calendar sections and resources as Google calendars."""

__version__ = "0.1.0"
