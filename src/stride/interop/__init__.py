"""Interoperability: Stride's records as standard FHIR R4 resources.

Not a Django app (no models): plain functions that build FHIR JSON as dicts
from the pure core's data and the apps' records, and check each resource
against the fhir.resources models before handing it out.
"""
