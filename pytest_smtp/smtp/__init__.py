"""The capturing SMTP server: protocol, server, TLS and AUTH."""
