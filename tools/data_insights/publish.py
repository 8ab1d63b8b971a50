"""Where a finished Insights Report goes besides the archive: Google Drive (official
google-api-python-client with a service account) and a summary page in Notion (notion-client)."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

from levqor.settings import get_settings

log = logging.getLogger(__name__)
DRIVE_SCOPES = ["https://www.googleapis.com/auth/drive.file"]


@dataclass(frozen=True)
class DriveFile:
    file_id: str
    link: str | None
    note: str


@dataclass(frozen=True)
class NotionPage:
    page_id: str | None
    note: str


def drive_service() -> Any | None:
    """A Drive v3 client from the configured service account, or None when none is configured."""
    s = get_settings()
    if not s.google_drive_service_account_file:
        return None
    # kept lazy: start-up time (the Google client is only needed when a report is published)
    import google_auth_httplib2
    import httplib2
    from google.oauth2 import service_account
    from googleapiclient.discovery import build

    with open(s.google_drive_service_account_file, encoding="utf-8") as fh:
        info = json.load(fh)
    creds = service_account.Credentials.from_service_account_info(info, scopes=DRIVE_SCOPES)
    http = httplib2.Http(timeout=30, ca_certs=s.google_drive_ca_file or None)
    opts = {"api_endpoint": s.google_drive_base_url.rstrip("/") + "/drive/v3/"} if s.google_drive_base_url else None
    return build("drive", "v3", http=google_auth_httplib2.AuthorizedHttp(creds, http=http),
                 client_options=opts, static_discovery=True, cache_discovery=False)


def upload_to_drive(pdf: bytes, name: str) -> DriveFile | None:
    """Upload ``pdf`` to the configured Drive folder; None when Drive is not configured. Failures are
    reported in the note (the local archive still holds the report), never raised."""
    try:
        svc = drive_service()
        if svc is None:
            return None
        from googleapiclient.http import MediaIoBaseUpload

        body: dict[str, Any] = {"name": name, "mimeType": "application/pdf"}
        folder = get_settings().google_drive_folder_id
        if folder:
            body["parents"] = [folder]
        media = MediaIoBaseUpload(io.BytesIO(pdf), mimetype="application/pdf", resumable=False)
        f = svc.files().create(body=body, media_body=media, fields="id,webViewLink",
                               supportsAllDrives=True).execute(num_retries=2)
        return DriveFile(str(f["id"]), f.get("webViewLink"), f"uploaded to Google Drive ({f['id']})")
    except Exception as exc:  # noqa: BLE001 - any Drive failure leaves the local archive as the copy
        log.warning("insights: Drive upload failed: %s", exc)
        return DriveFile("", None, f"Google Drive upload failed: {str(exc)[:200]}")


def push_to_notion(period: str, lines: list[str], url: str) -> NotionPage | None:
    """Create a page with the report's summary in the configured Notion data source; None when off."""
    s = get_settings()
    if not (s.notion_token and s.insights_notion_data_source_id):
        return None
    from notion_client import Client  # kept lazy: start-up time

    opts: dict[str, Any] = {"auth": s.notion_token}
    if s.notion_base_url:
        opts["base_url"] = s.notion_base_url
    try:
        page: Any = Client(**opts).pages.create(
            parent={"data_source_id": s.insights_notion_data_source_id},
            properties={"Name": {"title": [{"text": {"content": f"Levqor Insights Report {period}"}}]},
                        "Period": {"rich_text": [{"text": {"content": period}}]},
                        "Report": {"url": url if url.startswith("http") else s.base_url.rstrip("/") + url}},
            children=[{"object": "block", "type": "bulleted_list_item",
                       "bulleted_list_item": {"rich_text": [{"type": "text", "text": {"content": line[:1900]}}]}}
                      for line in lines])
        return NotionPage(str(page["id"]), f"summary pushed to Notion ({page['id']})")
    except Exception as exc:  # noqa: BLE001 - Notion is a courtesy copy; the report is archived regardless
        log.warning("insights: Notion push failed: %s", exc)
        return NotionPage(None, f"Notion push failed: {str(exc)[:200]}")
