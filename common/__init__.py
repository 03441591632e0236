"""What the bot service and the action server share: settings, catalogs and the texts citizens
read, neighbourhoods and places, language, time phrases, logging. Imports neither bot nor dialogues."""
