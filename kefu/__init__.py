"""Kefu (客服): a rule-based Chinese customer-service assistant for online shops."""

__version__ = "0.1.0"
