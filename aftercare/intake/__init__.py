"""Enrollment from the hospital's own systems: HL7 v2 ADT over MLLP and FHIR R4 polling.

Each source parses its messages into the neutral requests of :mod:`aftercare.intake.requests`,
and :mod:`aftercare.intake.apply` carries them out through the enrollment code staff use.
"""
