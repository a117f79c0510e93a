"""Benchmarks: Kefu side by side with a stock `rasa init` bot."""
