"""Every save or delete of an upstream, a served model, the gateway's settings or an
action's template or defaults (a revert to an earlier version is a save) bumps the
configuration stamp (after the commit), whoever made it: the console, the import of
config.yml, a shell.  The health checks write with ``update()`` and send no signal."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from gateway.models import (
    ActionSetting,
    ActionTemplate,
    GatewaySetting,
    ServedModel,
    UpstreamServer,
)
from gateway.services import config_changed


@receiver(post_save, sender=UpstreamServer, dispatch_uid="gateway.upstream.saved")
@receiver(post_delete, sender=UpstreamServer, dispatch_uid="gateway.upstream.deleted")
@receiver(post_save, sender=ServedModel, dispatch_uid="gateway.model.saved")
@receiver(post_delete, sender=ServedModel, dispatch_uid="gateway.model.deleted")
@receiver(post_save, sender=GatewaySetting, dispatch_uid="gateway.setting.saved")
@receiver(post_delete, sender=GatewaySetting, dispatch_uid="gateway.setting.deleted")
@receiver(post_save, sender=ActionTemplate, dispatch_uid="gateway.action_template.saved")
@receiver(post_delete, sender=ActionTemplate, dispatch_uid="gateway.action_template.deleted")
@receiver(post_save, sender=ActionSetting, dispatch_uid="gateway.action_setting.saved")
@receiver(post_delete, sender=ActionSetting, dispatch_uid="gateway.action_setting.deleted")
def gateway_configuration_changed(*, raw: bool = False, **kwargs: Any) -> None:
    if raw:  # loaddata: the fixture's rows, no live change
        return
    config_changed()
