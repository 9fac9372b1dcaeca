"""One module per wire format; each turns a request body into events and dead letters."""
