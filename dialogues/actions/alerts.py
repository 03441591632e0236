"""Neighbourhood alerts in chat: subscribe (district buttons, then neighbourhood buttons; a
shared location; or a typed name), unsubscribe, and list what the citizen is subscribed to.

Payloads (all under Telegram's 64 bytes):
``/subscribe_alerts{"district_code":"06"}`` shows that district's neighbourhoods,
``/subscribe_alerts{"neighbourhood_code":"06-31"}`` subscribes,
``/unsubscribe_alerts{"neighbourhood_code":"06-31"}`` (or ``"all"``) unsubscribes.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from common.geo import Neighbourhood
from common.i18n import N_
from dialogues.actions.base import BarriAction, channel_of, latest_entities, latest_intent, latest_text
from storage import subscriptions as subscription_store
from storage.errors import StorageError

ALL = "all"
PLACE_SHOWN_MAX = 60  # an unknown place is quoted back, shortened
ANOTHER_NEIGHBOURHOOD = N_("Another neighbourhood")
STOP_ALERTS = N_("Stop alerts")
ALL_OF_THEM = N_("All of them")


def district_code(neighbourhood: Neighbourhood) -> str:
    return neighbourhood.code.split("-", 1)[0]


class AlertsAction(BarriAction):
    """What subscribing, unsubscribing and listing share: places and buttons."""

    def district_buttons(self) -> list[dict[str, str]]:
        districts: dict[str, str] = {}
        for item in sorted(self.services.neighbourhoods.all(), key=lambda n: n.code):
            districts.setdefault(district_code(item), item.district)
        return [
            {"title": name, "payload": f'/subscribe_alerts{{"district_code":"{code}"}}'}
            for code, name in districts.items()
        ]

    def neighbourhood_buttons(self, district: str) -> list[dict[str, str]]:
        return [
            {"title": item.name, "payload": f'/subscribe_alerts{{"neighbourhood_code":"{item.code}"}}'}
            for item in sorted(self.services.neighbourhoods.all(), key=lambda n: n.code)
            if district_code(item) == district
        ]

    def named(self, tracker: Tracker) -> tuple[Neighbourhood | None, str | None, tuple[Neighbourhood, ...]]:
        """The neighbourhood the citizen's message points at, the place they typed (if any), and
        the neighbourhoods it may be when it cannot be told (a street through several)."""
        entities = latest_entities(tracker)
        code = entities.get("neighbourhood_code")
        if code:
            return self.services.neighbourhoods.by_code(str(code)), None, ()
        places = self.services.neighbourhoods
        latitude, longitude = entities.get("latitude"), entities.get("longitude")
        if latitude is not None and longitude is not None:
            try:
                return places.at(float(latitude), float(longitude)), None, ()
            except (TypeError, ValueError):
                return None, None, ()
        text = latest_text(tracker)
        if text.startswith("/"):
            return None, None, ()
        place = str(entities.get("place") or "").strip()
        # the report's own resolver: "Gran Via de les Corts Catalanes" is a street, not les Corts
        words = place or (text if latest_intent(tracker) == "inform" else "")
        if words:
            resolved = self.services.gazetteer.resolve(words)
            if resolved.located or resolved.needs_question:
                return resolved.neighbourhood, place or None, resolved.candidates
            if resolved.street:
                return None, place or text, ()  # a street we cannot place: not a neighbourhood's name
        found = (places.named_in(place) if place else None) or places.named_in(text)
        return found, place or None, ()


class ActionSubscribeAlerts(AlertsAction):
    def name(self) -> str:
        return "action_subscribe_alerts"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        entities = latest_entities(tracker)
        district = entities.get("district_code")
        if district and not entities.get("neighbourhood_code"):
            buttons = self.neighbourhood_buttons(str(district))
            if buttons:
                name = next(n.district for n in self.services.neighbourhoods.all() if district_code(n) == district)
                self.say(dispatcher, tracker, "utter_alerts_choose_neighbourhood", district=name, buttons=buttons)
                return []
        found, place, candidates = self.named(tracker)
        if found is None and candidates:
            buttons = [
                {"title": item.name, "payload": f'/subscribe_alerts{{"neighbourhood_code":"{item.code}"}}'}
                for item in candidates
            ]
            self.say(dispatcher, tracker, "utter_alerts_which_neighbourhood",
                     place=(place or latest_text(tracker))[:PLACE_SHOWN_MAX], buttons=buttons)
            return []
        if found is None:
            if entities.get("latitude") is not None:
                self.say(dispatcher, tracker, "utter_alerts_location_outside", buttons=self.district_buttons())
            elif place or (latest_intent(tracker) == "inform" and latest_text(tracker)[:1] not in ("", "/")):
                shown = (place or latest_text(tracker))[:PLACE_SHOWN_MAX]
                self.say(
                    dispatcher, tracker, "utter_alerts_place_unknown", place=shown, buttons=self.district_buttons()
                )
            else:
                self.say(dispatcher, tracker, "utter_alerts_choose_district", buttons=self.district_buttons())
            return []
        try:
            added = await self.in_db(
                subscription_store.subscribe,
                sender_id=tracker.sender_id,
                channel=channel_of(tracker.sender_id),
                locale=self.locale(tracker),
                neighbourhood_code=found.code,
            )
        except StorageError:
            return self.storage_failed(dispatcher, tracker, "subscribe")
        self.say(
            dispatcher, tracker, "utter_alerts_subscribed" if added else "utter_alerts_already_subscribed",
            neighbourhood=found.name,
        )
        return []


class ActionUnsubscribeAlerts(AlertsAction):
    def name(self) -> str:
        return "action_unsubscribe_alerts"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            if latest_entities(tracker).get("neighbourhood_code") == ALL:
                removed = await self.in_db(subscription_store.unsubscribe_all, sender_id=tracker.sender_id)
                self.say(dispatcher, tracker, "utter_alerts_unsubscribed_all" if removed else "utter_alerts_none")
                return []
            found, _, _ = self.named(tracker)
            if found is not None:
                removed_one = await self.in_db(
                    subscription_store.unsubscribe, sender_id=tracker.sender_id, neighbourhood_code=found.code
                )
                self.say(
                    dispatcher, tracker,
                    "utter_alerts_unsubscribed" if removed_one else "utter_alerts_not_subscribed",
                    neighbourhood=found.name,
                )
                return []
            codes = await self.in_db(subscription_store.list_subscriptions, sender_id=tracker.sender_id)
        except StorageError:
            return self.storage_failed(dispatcher, tracker, "unsubscribe")
        if not codes:
            self.say(dispatcher, tracker, "utter_alerts_none")
            return []
        buttons = [
            {"title": self.services.neighbourhoods.name_of(code),
             "payload": f'/unsubscribe_alerts{{"neighbourhood_code":"{code}"}}'}
            for code in codes
        ]
        everything = f'/unsubscribe_alerts{{"neighbourhood_code":"{ALL}"}}'
        buttons.append({"title": self.t(tracker, ALL_OF_THEM), "payload": everything})
        self.say(dispatcher, tracker, "utter_alerts_choose_unsubscribe", buttons=buttons)
        return []


class ActionListSubscriptions(AlertsAction):
    def name(self) -> str:
        return "action_list_subscriptions"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            codes = await self.in_db(subscription_store.list_subscriptions, sender_id=tracker.sender_id)
        except StorageError:
            return self.storage_failed(dispatcher, tracker, "list subscriptions")
        if not codes:
            self.say(dispatcher, tracker, "utter_alerts_none")
            return []
        listed = ", ".join(self.services.neighbourhoods.name_of(code) for code in codes)
        buttons: list[dict[str, Any]] = [
            {"title": self.t(tracker, ANOTHER_NEIGHBOURHOOD), "payload": "/subscribe_alerts"},
            {"title": self.t(tracker, STOP_ALERTS), "payload": "/unsubscribe_alerts"},
        ]
        self.say(dispatcher, tracker, "utter_alerts_list", neighbourhoods=listed, buttons=buttons)
        return []
