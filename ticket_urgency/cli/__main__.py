from ticket_urgency.cli import app

app(prog_name="ticket-urgency")
