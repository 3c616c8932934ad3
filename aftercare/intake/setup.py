"""Building the intake services from settings, for the CLI and the benchmarks."""

from __future__ import annotations

from aftercare.app import App
from aftercare.errors import SettingsError
from aftercare.intake.fhir_client import Auth, BearerToken, FhirClient, SmartBackend
from aftercare.intake.hl7_service import Hl7Service
from aftercare.intake.mapping import ProcedureMap, load_map


def facility_timezone(app: App) -> str:
    zone = app.settings.facility_timezone
    if zone is None:
        raise SettingsError(
            "AFTERCARE_FACILITY_TIMEZONE: is required for hospital intake (the zone of times "
            "sent without an offset and of the patients enrolled), e.g. America/Chicago"
        )
    return zone


def procedure_map(app: App) -> ProcedureMap:
    return load_map(app.settings.hl7_map, app.catalog)


def hl7_service(app: App) -> Hl7Service:
    return Hl7Service(app, procedure_map(app), facility_timezone(app))


def fhir_client(app: App, base: str) -> FhirClient:
    settings = app.settings
    auth: Auth | None = None
    if settings.fhir_client_id and settings.fhir_private_key:
        auth = SmartBackend(
            base.rstrip("/"),
            settings.fhir_client_id,
            settings.fhir_private_key,
            key_id=settings.fhir_key_id,
            token_url=settings.fhir_token_url,
        )
    elif settings.fhir_client_id or settings.fhir_private_key:
        raise SettingsError(
            "AFTERCARE_FHIR_CLIENT_ID: SMART backend services need both it and "
            "AFTERCARE_FHIR_PRIVATE_KEY"
        )
    elif settings.fhir_token:
        auth = BearerToken(settings.fhir_token)
    return FhirClient(base, auth)
