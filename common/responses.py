"""Every message the assistant says, as English msgids translated through Babel.

The engine's `utter_*` responses and the custom actions both render from here, in the
citizen's language, inside the action server: this is the one place where translation of
dialogue happens (the channel adapters only draw what they receive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.i18n import N_, Catalogs

INCIDENT_TYPES = (
    "theft", "vandalism", "noise", "harassment", "assault",
    "drugs", "suspicious_activity", "traffic", "incivility",
)

CATEGORY_LABELS = {
    "theft": N_("Theft"),
    "vandalism": N_("Vandalism"),
    "noise": N_("Noise"),
    "harassment": N_("Harassment"),
    "assault": N_("Assault or fight"),
    "drugs": N_("Drugs"),
    "suspicious_activity": N_("Suspicious activity"),
    "traffic": N_("Dangerous traffic"),
    "incivility": N_("Incivility"),
    "other": N_("Other"),
}

STATUS_LABELS = {
    "new": N_("received, waiting to be reviewed"),
    "acknowledged": N_("reviewed by a dispatcher"),
    "in_progress": N_("in progress"),
    "resolved": N_("resolved"),
    "closed": N_("closed"),
    "rejected": N_("not taken forward"),
    "duplicate": N_("joined to another report of the same incident"),
}

CONTACT_LABELS = {
    "anonymous": N_("Anonymous"),
    "chat": N_("Updates in this chat"),
    "contact": N_("Name and phone or email"),
}

FIELD_LABELS = {
    "incident_type": N_("Type"),
    "description": N_("What happened"),
    "place": N_("Where"),
    "incident_time": N_("When"),
    "photos": N_("Photos"),
    "contact_mode": N_("Contact"),
}


@dataclass(frozen=True)
class Button:
    title: str  # msgid
    payload: str


@dataclass(frozen=True)
class Template:
    text: str  # msgid, may hold {named} placeholders
    buttons: tuple[Button, ...] = ()
    request: str | None = None  # "location" or "photo": the adapter offers that input
    extra: tuple[str, ...] = field(default=())  # further paragraphs (msgids)


def _type_buttons() -> tuple[Button, ...]:
    return tuple(
        Button(CATEGORY_LABELS[code], f'/inform{{"incident_type":"{code}"}}')
        for code in INCIDENT_TYPES
    )


# Buttons offered by several responses, each defined once.
REPORT_INCIDENT = Button(N_("Report an incident"), "/report_incident")
CHECK_REPORT = Button(N_("Check my report"), "/check_status")
HOW_IT_WORKS = Button(N_("How does it work?"), "/faq/how_it_works")
NO = Button(N_("No"), "/deny")
CANCEL = Button(N_("Cancel"), "/cancel")
SEND_REPORT = Button(N_("Send the report"), "/affirm")
TIME_UNKNOWN = Button(N_("I don't know"), '/inform{"incident_time":"unknown"}')
MAIN_MENU = (REPORT_INCIDENT, CHECK_REPORT, HOW_IT_WORKS)

RESPONSES: dict[str, Template] = {
    "utter_greet": Template(
        N_("Hello! I'm Barri, the neighbourhood safety assistant of {city}."),
        extra=(
            N_(
                "I can take a report of something that happened (theft, vandalism, noise, "
                "harassment...), tell you how your report is going and answer questions. "
                "If someone is in danger right now, call 112."
            ),
        ),
        buttons=MAIN_MENU,
    ),
    "utter_goodbye": Template(N_("Goodbye, take care. You can write to me again at any time.")),
    "utter_youre_welcome": Template(N_("You're welcome. Thank you for helping to keep the neighbourhood safe.")),
    "utter_iamabot": Template(
        N_(
            "I'm an automated assistant, not a person. Your reports go to the dispatchers "
            "of {city}, who are people. If you want to talk to one, just say so."
        )
    ),
    "utter_out_of_scope": Template(
        N_(
            "Sorry, I can't help with that. I take reports of everyday safety problems "
            "in the street and answer questions about them."
        ),
        buttons=(
            REPORT_INCIDENT,
            Button(N_("What can I report?"), "/faq/what_to_report"),
        ),
    ),
    "utter_fallback": Template(
        N_("Sorry, I didn't understand that. Could you say it in other words? You can also choose:"),
        buttons=(
            REPORT_INCIDENT,
            CHECK_REPORT,
            Button(N_("Talk to a person"), "/human_handoff"),
        ),
    ),
    "utter_default": Template(
        N_("I'm not sure what to do with that. Here is what I can do:"),
        buttons=MAIN_MENU,
    ),
    "utter_emergency": Template(
        N_("🚨 If someone is in danger now, call 112 immediately. It is free and answers 24 hours a day."),
        extra=(
            N_("Do not put yourself at risk. When you are safe, I can take a report of what happened. Do you want to report it now?"),
        ),
        buttons=(
            Button(N_("Yes, report it"), "/affirm"),
            NO,
        ),
    ),
    "utter_ask_danger": Template(
        N_("Is anyone in danger right now?"),
        extra=(N_("If so, call 112 now: it is free and answers 24 hours a day. I will take the report afterwards."),),
        buttons=(
            Button(N_("Yes: call 112"), "/emergency"),
            Button(N_("No, I want to report it"), "/report_incident"),
        ),
    ),
    "utter_danger_in_report": Template(
        N_("If anyone is in danger right now, call 112 first: it is free and answers 24 hours a day."),
        buttons=(Button(N_("Someone is in danger"), "/emergency"),),
    ),
    "utter_stay_safe": Template(N_("All right. Stay safe, and write to me whenever you want to report it.")),
    "utter_faq/emergency_number": Template(
        N_(
            "In an emergency call 112, the free European emergency number (police, ambulance, "
            "fire brigade), 24 hours a day. For non-urgent matters you can also call the "
            "Guàrdia Urbana on 092 or report it here."
        )
    ),
    "utter_faq/anonymity": Template(
        N_(
            "Yes, you can report anonymously: choose \"Anonymous\" at the end of the report and "
            "nobody will know who you are. Your name is never shown to the people you report. "
            "With the reference you get, you can still check how the report is going."
        )
    ),
    "utter_faq/data_use": Template(
        N_(
            "We use your report only to deal with the incident and for anonymous statistics. "
            "Dispatchers of {city} see it; your contact details only if you choose to leave them. "
            "You can erase your personal data at any time by writing \"delete my data\"."
        )
    ),
    "utter_faq/police_station": Template(
        N_(
            "To file a formal complaint (denuncia) go to any police station of the Mossos "
            "d'Esquadra or the Guàrdia Urbana, or call 112 if it is urgent. A report here helps "
            "the city act, but it is not a formal complaint."
        )
    ),
    "utter_faq/what_to_report": Template(
        N_(
            "You can report everyday safety problems in the street: theft, vandalism, noise, "
            "harassment, fights, drugs, suspicious activity, dangerous traffic and incivility. "
            "This is not for emergencies: if someone is in danger now, call 112."
        ),
        buttons=(REPORT_INCIDENT,),
    ),
    "utter_faq/how_it_works": Template(
        N_(
            "Tell me what happened in your own words; I'll ask only for what is missing "
            "(where, when, a photo if you have one) and give you a reference. Dispatchers "
            "review every report, and you can ask me for its status with the reference."
        ),
        buttons=(REPORT_INCIDENT,),
    ),
    "utter_ask_description": Template(N_("Tell me what happened, in your own words.")),
    "utter_ask_incident_type": Template(N_("What kind of incident was it?"), buttons=_type_buttons()),
    "utter_ask_place": Template(
        N_("Where did it happen? Write the address or place, or share your location."),
        request="location",
    ),
    "utter_ask_incident_time": Template(
        N_("When did it happen? For example \"just now\", \"an hour ago\" or \"yesterday at 10 pm\"."),
        buttons=(
            Button(N_("Just now"), '/inform{"incident_time":"now"}'),
            TIME_UNKNOWN,
        ),
    ),
    "utter_ask_photos_done": Template(
        N_("Do you have a photo? You can send up to {max_photos} now, or continue without one."),
        buttons=(Button(N_("Continue without a photo"), '/inform{"photos_done":"yes"}'),),
        request="photo",
    ),
    "utter_photo_received": Template(
        N_("Photo received ({count} of {max_photos}). Send another one or continue."),
        buttons=(Button(N_("Continue"), '/inform{"photos_done":"yes"}'),),
        request="photo",
    ),
    "utter_too_many_photos": Template(
        N_("That's the maximum of {max_photos} photos for one report."),
    ),
    "utter_ask_contact_mode": Template(
        N_("Last question: how do you want to file it?"),
        extra=(
            N_(
                "Anonymous: nobody will know who you are, and you can still check the status with "
                "the reference. Updates in this chat: we'll tell you here how it goes. Name and "
                "phone or email: an officer may contact you."
            ),
        ),
        buttons=(
            Button(CONTACT_LABELS["anonymous"], '/inform{"contact_mode":"anonymous"}'),
            Button(CONTACT_LABELS["chat"], '/inform{"contact_mode":"chat"}'),
            Button(CONTACT_LABELS["contact"], '/inform{"contact_mode":"contact"}'),
        ),
    ),
    "utter_ask_contact_name": Template(N_("What is your name?")),
    "utter_ask_contact_phone": Template(N_("What phone number or email address can we reach you on?")),
    "utter_report_summary": Template(
        N_("Please check your report:"),
        extra=(N_("{summary}"),),
        buttons=(
            SEND_REPORT,
            Button(N_("Change something"), "/deny"),
            CANCEL,
        ),
    ),
    "utter_ask_which_field": Template(
        N_("What do you want to change?"),
        buttons=tuple(
            Button(FIELD_LABELS[name], f'/inform{{"correct":"{name}"}}')
            for name in ("incident_type", "description", "place", "incident_time", "photos", "contact_mode")
        ),
    ),
    "utter_case_saved": Template(
        N_("Thank you. Your report has been filed with the reference {ref}."),
        extra=(
            N_("Where: {place}. When: {when}."),
            N_("Received: {received}."),
            N_("Keep the reference: you can ask me for the status of your report with it at any time."),
        ),
    ),
    "utter_case_saved_urgent": Template(
        N_("It has been marked as urgent for the dispatchers. If anyone is still in danger, call 112 now."),
    ),
    "utter_photo_receipt": Template(
        N_("Photo {number}: SHA-256 {sha256} (of the photo as you sent it; we keep it without its location and camera details)")
    ),
    "utter_case_not_saved": Template(
        N_(
            "Sorry, I could not save your report because of a technical problem. Nothing "
            "was lost: please press \"Send the report\" again in a minute."
        ),
        buttons=(SEND_REPORT,),
    ),
    "utter_report_cancelled": Template(N_("All right, I've cancelled the report. Nothing was saved.")),
    "utter_nothing_to_cancel": Template(N_("There is nothing to cancel. How can I help you?")),
    "utter_description_too_short": Template(
        N_("Please tell me a little more about what happened: a sentence is enough."),
    ),
    "utter_invalid_time": Template(
        N_(
            "I couldn't work out when that was. Try something like \"just now\", "
            "\"yesterday at 10 pm\" or \"on Monday morning\", or press \"I don't know\"."
        ),
        buttons=(TIME_UNKNOWN,),
    ),
    "utter_time_in_future": Template(N_("That time is in the future. When did it happen?")),
    "utter_place_too_short": Template(
        N_("Please give me a street and number, a square, a landmark or share your location."),
        request="location",
    ),
    "utter_location_outside": Template(
        N_("That location is outside {city}. Please share a location or write an address in {city}."),
        request="location",
    ),
    "utter_location_received": Template(N_("Location received: {place}.")),
    "utter_place_understood": Template(N_("Understood: {place}.")),
    "utter_place_not_located": Template(
        N_("I could not find \u201c{place}\u201d on the map of {city}. I will pass it on to the team in your words."),
    ),
    # the question after a street that goes through several neighbourhoods; the action server
    # puts one button per neighbourhood before these (report.place_question)
    "utter_ask_place_neighbourhood": Template(
        N_("{street} goes through several neighbourhoods. In which one did it happen?"),
        buttons=(Button(N_("A corner or a number"), '/inform{"correct":"place"}'),),
        request="location",
    ),
    "utter_ask_place_long_street": Template(
        N_("{street} is a long street. At which corner, or at which number, did it happen? You can also share your location."),
        request="location",
    ),
    "utter_ask_place_precisely": Template(
        N_("Tell me the corner (for example \u201cMallorca with Pau Claris\u201d) or the street and number, or share your location."),
        request="location",
    ),
    "utter_invalid_contact": Template(
        N_("That doesn't look like a phone number or an email address. Please write it again, for example 612 345 678 or name@example.com."),
    ),
    "utter_invalid_choice": Template(N_("Please choose one of the options.")),
    "utter_offer_stop": Template(
        N_("This doesn't seem to be working. You can try again, or stop the report."),
        buttons=(Button(N_("Stop the report"), "/cancel"),),
    ),
    "utter_photo_not_expected": Template(
        N_("Thanks for the photo. Photos can be added while making a report: do you want to report something?"),
        buttons=(REPORT_INCIDENT,),
    ),
    "utter_status": Template(
        N_("Report {ref} ({category}), filed on {created}: {status}."),
    ),
    "utter_status_note": Template(N_("Latest note from the dispatchers: {note}")),
    "utter_status_not_found": Template(
        N_(
            "I couldn't find a report {ref} filed from this chat. Check the reference: it looks "
            "like K7Q-4M2."
        ),
    ),
    "utter_status_choose": Template(N_("Which report? These are your latest ones:")),
    "utter_status_none": Template(
        N_("You have no reports filed from this chat yet. Do you want to report something?"),
        buttons=(REPORT_INCIDENT,),
    ),
    "utter_handoff_recorded": Template(
        N_(
            "I've asked a dispatcher to continue this conversation about report {ref}. They "
            "will write to you here as soon as they can. If it is urgent, call 112."
        ),
    ),
    "utter_handoff_during_report": Template(
        N_(
            "A dispatcher will take over as soon as your report is filed, so they have all the "
            "details. Let's finish it first; if it is urgent, call 112."
        ),
    ),
    "utter_handoff_no_case": Template(
        N_(
            "A dispatcher can take over once there is a report to look at. Do you want to "
            "report something now? If it is urgent, call 112."
        ),
        buttons=(REPORT_INCIDENT,),
    ),
    "utter_ask_language": Template(
        N_("Which language do you prefer?"),
        buttons=(
            Button("English", '/change_language{"language":"en"}'),
            Button("Español", '/change_language{"language":"es"}'),
            Button("Català", '/change_language{"language":"ca"}'),
        ),
    ),
    "utter_language_changed": Template(N_("Done, I'll speak English from now on.")),
    "utter_ask_forget_confirm": Template(
        N_(
            "This erases your contact details, your photos, the text of your reports and our "
            "conversation. The basic facts of your reports (type, neighbourhood, date) are kept "
            "anonymously for statistics. Do you want to continue?"
        ),
        buttons=(Button(N_("Yes, erase my data"), "/affirm"), NO),
    ),
    "utter_forgotten": Template(
        N_("Done: your personal data and our conversation have been erased ({count} reports anonymised)."),
    ),
    "utter_forget_cancelled": Template(N_("All right, nothing was erased.")),
    "utter_alerts_unavailable": Template(
        N_("Neighbourhood alerts are not available yet in this service. In the meantime you can report incidents and check your reports here."),
    ),
    "utter_technical_problem": Template(
        N_("Sorry, something went wrong on our side. Please try again in a minute."),
    ),
    # --- neighbourhood alerts (buttons are built by dialogues/actions/alerts.py) ---
    "utter_alerts_choose_district": Template(
        N_(
            "Which neighbourhood do you want alerts for? Choose its district, write the "
            "neighbourhood's name or share your location."
        ),
        request="location",
    ),
    "utter_alerts_choose_neighbourhood": Template(N_("Which neighbourhood of {district}?")),
    "utter_alerts_subscribed": Template(
        N_("Done: you will get alerts for {neighbourhood} here, in your language."),
        extra=(N_("To stop them, write \"stop alerts\"."),),
    ),
    "utter_alerts_already_subscribed": Template(N_("You already get alerts for {neighbourhood}.")),
    "utter_alerts_which_neighbourhood": Template(
        N_("\u201c{place}\u201d is in several neighbourhoods. Which one do you want alerts for?"),
    ),
    "utter_alerts_place_unknown": Template(
        N_(
            "I don't know a neighbourhood of {city} called \"{place}\". Choose its district below, "
            "or share your location."
        ),
        request="location",
    ),
    "utter_alerts_location_outside": Template(
        N_("That location is not in any neighbourhood of {city}. Choose a district below, or share another location."),
        request="location",
    ),
    "utter_alerts_list": Template(N_("You get alerts for: {neighbourhoods}.")),
    "utter_alerts_none": Template(
        N_("You are not subscribed to any neighbourhood alerts."),
        buttons=(Button(N_("Get alerts for a neighbourhood"), "/subscribe_alerts"),),
    ),
    "utter_alerts_choose_unsubscribe": Template(N_("Which alerts do you want to stop?")),
    "utter_alerts_unsubscribed": Template(N_("Done: you will no longer get alerts for {neighbourhood}.")),
    "utter_alerts_unsubscribed_all": Template(N_("Done: you will no longer get any neighbourhood alerts.")),
    "utter_alerts_not_subscribed": Template(N_("You were not getting alerts for {neighbourhood}.")),
    # --- follow-up of an open case (sent through the outbox, see outreach.py) ---
    "utter_follow_up": Template(
        N_("Some days ago you filed report {ref}. Its status now: {status}."),
        extra=(N_("Is there anything you want to add? Something new that happened, or a detail you remembered?"),),
    ),
    "utter_ask_case_info": Template(
        N_("Write what you want to add to report {ref}, in one message."),
        buttons=(CANCEL,),
    ),
    "utter_case_info_added": Template(
        N_("Thank you: I've added it to report {ref}. The dispatchers will see it."),
    ),
    "utter_case_info_cancelled": Template(N_("All right, nothing was added to report {ref}.")),
    "utter_case_info_empty": Template(
        N_("Please write what you want to add in a message (text), or press \"Cancel\"."),
        buttons=(CANCEL,),
    ),
    # --- after-resolution survey (the first question is sent through the outbox) ---
    "utter_survey_solved": Template(
        N_("Your report {ref} has been marked as resolved. Could you answer three short questions to help us improve?"),
        extra=(N_("First: was the problem solved?"),),
    ),
    "utter_ask_survey_solved": Template(N_("Was the problem of report {ref} solved?")),
    "utter_ask_survey_satisfaction": Template(
        N_("How satisfied are you with how report {ref} was handled? From 1 (not at all) to 5 (very satisfied)."),
    ),
    "utter_ask_survey_safety": Template(
        N_("How safe do you feel in your neighbourhood? From 1 (very unsafe) to 5 (very safe)."),
    ),
    "utter_ask_survey_comment": Template(
        N_("Anything else you want to tell us? Write it in one message, or press \"Skip\"."),
    ),
    "utter_survey_thanks": Template(N_("Thank you for your answers: they help {city} to improve.")),
    "utter_survey_invalid_yes_no": Template(N_("Please answer yes or no, or press one of the buttons.")),
    "utter_survey_invalid_score": Template(
        N_("Please answer with a number from 1 to 5, or press one of the buttons."),
    ),
    "utter_survey_already_answered": Template(
        N_("You have already answered the survey about report {ref}. Thank you!"),
    ),
    "utter_survey_not_found": Template(
        N_("I couldn't find a survey about report {ref} for this chat."),
    ),
    "utter_survey_stopped": Template(
        N_("All right, I've stopped the survey. Thank you for the answers you gave."),
    ),
}

# Said by the channel adapters themselves, without the engine.
ADAPTER_MESSAGES = {
    "unavailable": N_("The service is temporarily unavailable, please try again in a minute."),
    "queued": N_(
        "I received your message. The assistant is briefly unavailable; "
        "I will answer here as soon as it is back, no need to send it again."
    ),
    "empty": N_("Your message was empty. Please write what you want to tell me."),
    "too_long": N_("Your message is too long (more than {limit} characters). Please write it in shorter parts."),
    "unreadable": N_("I can read text, photos and locations. Please write your message."),
    "photo_type": N_("Please send the photo as a JPEG, PNG or WebP image."),
    "photo_too_big": N_("That photo is too big. The maximum size is {limit_mb} MB."),
    "too_many_photos": N_("That's the maximum of {max_photos} photos for one report."),
    "not_understood": N_("Sorry, I didn't understand that. Could you say it in other words?"),
    "busy": N_("You are sending messages very fast. Please wait a moment."),
    "rate_limited": N_(
        "You are sending too many messages at once, so I did not read the last ones. "
        "Please wait a minute, then send them again."
    ),
    "session": N_("Your chat session has expired. Please reload the page."),
    "edited": N_("I only read new messages. Please send the correction as a new message."),
    "private_only": N_("Please write to me in a private chat: reports are personal."),
}


def render(
    name: str, catalogs: Catalogs, locale: str, **args: Any
) -> dict[str, Any]:
    """One response in the citizen's language, as the engine's message dict."""
    template = RESPONSES[name]
    t = catalogs.bound(locale)
    paragraphs = [t(template.text)] + [t(extra) for extra in template.extra]
    text = "\n\n".join(p.format(**args) if args else p for p in paragraphs)
    message: dict[str, Any] = {"text": text}
    if template.buttons:
        message["buttons"] = [
            {"title": t(button.title), "payload": button.payload} for button in template.buttons
        ]
    if template.request:
        message["custom"] = {"request": template.request}
    return message
