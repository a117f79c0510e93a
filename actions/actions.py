"""Custom actions: thin translations between the dialogue and kefu.shop."""
