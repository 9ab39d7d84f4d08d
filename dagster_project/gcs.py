"""The ``gcs`` deployment's storage resource, built on dagster-gcp's ``GCSResource``.

Kept apart from :mod:`dagster_project.resources` because importing ``dagster_gcp`` pulls in
BigQuery and Dataproc clients, which the local deployment does not need.
"""

from dagster_gcp import GCSResource

from dagster_project.resources import TicketStorage
from ticket_urgency.storage import Storage, open_storage


class GCSTicketStorage(TicketStorage):
    """Ticket storage in a GCS bucket, with the client from dagster-gcp's ``GCSResource``."""

    gcs: GCSResource

    def open(self) -> Storage:
        """Open the bucket with the GCSResource's client (honours ``STORAGE_EMULATOR_HOST``)."""
        return open_storage(self.root, self.settings(), client=self.gcs.get_client())
