"""The public API's bodies: each request typed once, and the rest of the OpenAPI document.

``requests`` defines every request body as a msgspec Struct; the gateway checks bodies
against those types (``validation``) and the OpenAPI document's request components are
generated from the same types (``components``).  ``answers`` holds the answer schemas,
which the gateway does not check and which stay written by hand.
"""
