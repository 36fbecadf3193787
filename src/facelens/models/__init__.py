"""The models: protocols (``base``), one module per backend, and the named profiles that combine
them into embedding spaces (``profiles``). Nothing is imported here, so importing one backend or
the protocols never loads another backend's library."""
