"""Support: tickets (threads between a user and staff) and feedback."""
