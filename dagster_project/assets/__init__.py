"""Software-defined assets of the ticket_urgency workflow."""
