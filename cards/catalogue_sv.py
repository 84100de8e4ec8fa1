"""Swedish for the catalogue (cards.catalogue): English key -> Swedish, as an IT admin in
Sweden would read it. Fact titles never contain an ASCII hyphen (Teams may break a title at
it: "E-/post"); where one is needed it is U+2011, the non-breaking hyphen.

To add a string: wrap it in the code (``t("Your text, {n} users", n=3)``) and add the same
English text here with its Swedish; the placeholders must be the same.
"""

from __future__ import annotations

from collections.abc import Mapping

NB_HYPHEN = "\u2011"

SWEDISH: Mapping[str, str] = {
    # --- kinds, fields, outcomes (labels) ---
    "Match": "Matchning",
    "New": "Ny",
    "Update": "Ändring",
    "Removal": "Borttagning",
    "Conflict": "Konflikt",
    "First name": "Förnamn",
    "Last name": "Efternamn",
    "Display name": "Visningsnamn",
    "Email": f"E{NB_HYPHEN}post",
    "Phones": "Telefonnummer",
    "Tags": "Taggar",
    "Accepted": "Godkänd",
    "Ignored": "Ignorerad",
    "Applied": "Verkställd",
    "Linked": "Kopplad",
    "Created": "Skapad",
    "Sync removed": "Synk borttagen",
    "Deleted": "Raderad",
    "Owner chosen": "Ägare vald",
    "Confirmed": "Bekräftad",
    "Dismissed": "Avfärdad",
    "Superseded": "Ersatt",
    "Handled": "Hanterad",
    "{name} was deleted in Entra": "{name} har raderats i Entra",
    "{name} was disabled in Entra": "{name} har inaktiverats i Entra",
    "{name} is out of the sync's scope": "{name} ligger utanför synkens omfång",
    # --- buttons ---
    "Accept": "Godkänn",
    "Ignore": "Ignorera",
    "Apply": "Verkställ",
    "Link": "Koppla",
    "Create": "Skapa",
    "Remove sync": "Ta bort synk",
    "Delete user": "Radera användare",
    "Yes, delete": "Ja, radera",
    "Cancel": "Avbryt",
    "Confirm": "Bekräfta",
    "Dismiss": "Avfärda",
    "Use this owner": "Välj som ägare",
    "Accept all matches": "Godkänn alla matchningar",
    "Apply all updates": "Verkställ alla ändringar",
    "Un-ignore": "Sluta ignorera",
    "Save": "Spara",
    "Refresh": "Uppdatera",
    "Disconnect": "Koppla från",
    "Edit settings": "Ändra inställningar",
    "Show the item again": "Visa ärendet igen",
    "Show the other schedule fields": "Visa övriga schemafält",
    # --- proposal cards ---
    "Entra user": "Användare i Entra",
    "Entra user {i}": "Användare {i} i Entra",
    "Directory user": "Användare i katalogen",
    "Entra id": "Id i Entra",
    "Matched by": "Matchad på",
    "phone": "telefon",
    "email": "e-post",
    "In Entra": "I Entra",
    "{name} (id {id})": "{name} (id {id})",
    "{name}, id {id}": "{name}, id {id}",
    "(empty)": "(tomt)",
    "(nobody holds it yet)": "(ingen har det ännu)",
    "{name} matches a directory user": "{name} matchar en användare i katalogen",
    "Accept links the users and applies:": "Godkänn kopplar ihop användarna och skriver:",
    "Accept links the users; no field changes.": (
        "Godkänn kopplar ihop användarna; inga fält ändras."
    ),
    "{name} is not in the directory": "{name} finns inte i katalogen",
    "Create would add a user with:": "Skapa lägger till en användare med:",
    "Or link to an existing directory user (optional)": (
        "Eller koppla till en befintlig användare i katalogen (valfritt)"
    ),
    "Type a name to search": "Skriv ett namn för att söka",
    "Showing {shown} of {total} directory users.": (
        "Visar {shown} av {total} användare i katalogen."
    ),
    "No directory user is free to link to.": "Ingen ledig användare i katalogen att koppla till.",
    "{name} changed in Entra": "{name} har ändrats i Entra",
    "Apply writes:": "Verkställ skriver:",
    "Soft-deleted: an Entra admin can restore the user": (
        "Mjukt raderad: en Entra-administratör kan återställa användaren"
    ),
    "Soft-deleted: an Entra admin can restore the user until {date}": (
        "Mjukt raderad: en Entra-administratör kan återställa användaren till och med {date}"
    ),
    "Gone: permanently deleted, or not readable any more": (
        "Borta: permanent raderad, eller går inte längre att läsa"
    ),
    "**Remove sync** keeps the directory user and all its data; only the link goes. "
    "**Delete user** deletes the directory user (you confirm it next).": (
        "**Ta bort synk** behåller användaren i katalogen med all data; bara kopplingen "
        "försvinner. **Radera användare** raderar användaren i katalogen (du bekräftar i "
        "nästa steg)."
    ),
    "{n} Entra users have the number {number}": "{n} användare i Entra har numret {number}",
    "Who owns this number?": "Vem äger numret?",
    "Pick the Entra user who owns the number.": "Välj den användare i Entra som äger numret.",
    "Delete the directory user {name} (id {id})? This cannot be undone.": (
        "Radera användaren {name} (id {id}) i katalogen? Det går inte att ångra."
    ),
    "The data in Entra changed since this card was posted; nothing was applied. "
    "Review the current values.": (
        "Uppgifterna i Entra har ändrats sedan kortet skickades; inget verkställdes. "
        "Granska de aktuella värdena."
    ),
    # --- guard, digest, auto-applied ---
    "GUARD": "SPÄRR",
    "This run would remove {n} of {total} linked users": (
        "Den här körningen skulle ta bort {n} av {total} kopplade användare"
    ),
    "This run would remove {n} of {total} linked users in {tenant}": (
        "Den här körningen skulle ta bort {n} av {total} kopplade användare i {tenant}"
    ),
    "Nothing was removed and no removal was proposed. **Confirm** lets this run's removals "
    "through as proposals (each still needs a decision); **Dismiss** holds them back.": (
        "Inget togs bort och ingen borttagning föreslogs. **Bekräfta** släpper igenom "
        "körningens borttagningar som förslag (vart och ett kräver fortfarande ett beslut); "
        "**Avfärda** håller dem kvar."
    ),
    "{n} item waits for a decision": "{n} ärende väntar på beslut",
    "{n} items wait for a decision": "{n} ärenden väntar på beslut",
    "Applied {n} change automatically": "{n} ändring verkställdes automatiskt",
    "Applied {n} changes automatically": "{n} ändringar verkställdes automatiskt",
    "… and {n} more": "… och {n} till",
    "… and {n} more fields": "… och {n} fält till",
    "… and {n} more tenants": "… och {n} klientorganisationer till",
    # --- status ---
    "Entra Sync status": "Status för Entra Sync",
    "Tenant {name}": "Klientorganisation {name}",
    "Connected": "Ansluten",
    "Not connected": "Inte ansluten",
    "never": "aldrig",
    "{when}, failed: {reason}": "{when}, misslyckades: {reason}",
    "{when}, failed": "{when}, misslyckades",
    "{when}, ok": "{when}, ok",
    "manual (type **sync now**)": "manuellt (skriv **sync now**)",
    "Last sync": "Senaste synk",
    "Next sync": "Nästa synk",
    "Synced": "Synkade",
    "{synced}/{total} synced": "{synced}/{total} synkade",
    "Pending": "Väntar",
    "No tenant is connected yet. Type **connect** to add one.": (
        "Ingen klientorganisation är ansluten ännu. Skriv **connect** för att lägga till en."
    ),
    "Times are in your time zone.": "Tiderna visas i din tidszon.",
    # --- decided, refusal ---
    "by {name}": "av {name}",
    "Linked to the directory user {user}.": "Kopplad till användaren {user} i katalogen.",
    "Fields written:": "Skrivna fält:",
    "No field changed.": "Inga fält ändrades.",
    "Written to the directory user {user}:": "Skrivet till användaren {user} i katalogen:",
    "A directory user was created with:": "En användare skapades i katalogen med:",
    "The directory user": "Användaren i katalogen",
    "{user} was kept with all its data; only the link was removed.": (
        "{user} behölls med all data; bara kopplingen togs bort."
    ),
    "The directory user {user} was deleted.": "Användaren {user} raderades i katalogen.",
    "The chosen Entra user": "Den valda användaren i Entra",
    "{owner} keeps the number {number}.": "{owner} behåller numret {number}.",
    "Not proposed again until un-ignored (type **ignored**).": (
        "Föreslås inte igen förrän du slutar ignorera (skriv **ignored**)."
    ),
    "The data changed since; a newer card replaces this one.": (
        "Uppgifterna har ändrats sedan dess; ett nyare kort ersätter det här."
    ),
    "Only admins can do this.": "Bara administratörer kan göra detta.",
    "This item is not known any more. Type **pending** to see what is open.": (
        "Ärendet finns inte längre. Skriv **pending** för att se vad som är öppet."
    ),
    "someone else": "någon annan",
    "This item is no longer pending: handled by {name}": (
        "Ärendet väntar inte längre: hanterat av {name}"
    ),
    "at {when}": "{when}",
    # --- settings, connect ---
    "Sync settings": "Synkinställningar",
    "Nothing was saved. Fix the fields marked ⚠️.": "Inget sparades. Rätta fälten märkta ⚠️.",
    "Scope": "Omfång",
    "Groups (object ids, comma-separated; empty: all users)": (
        "Grupper (objekt-id, kommaseparerade; tomt: alla användare)"
    ),
    "all users": "alla användare",
    "Only enabled accounts": "Bara aktiverade konton",
    "Only users with a phone number": "Bara användare med telefonnummer",
    "Field mapping (Graph attribute, case-sensitive)": (
        "Fältmappning (Graph-attribut, skiftlägeskänsligt)"
    ),
    "not mapped": "inte mappat",
    "Tags (attributes, comma-separated)": "Taggar (attribut, kommaseparerade)",
    "e.g. department, city": "t.ex. department, city",
    "Schedule": "Schema",
    "Mode": "Läge",
    "Manual: every change waits for an admin": "Manuellt: varje ändring väntar på en administratör",
    "Daily at a set time": "Dagligen vid en viss tid",
    "Every N hours": "Var N:e timme",
    "Watch: look for Entra changes every N seconds": (
        "Bevaka: leta efter ändringar i Entra var N:e sekund"
    ),
    "Daily at (HH:MM, UTC)": "Dagligen kl. (HH:MM, UTC)",
    "Use HH:MM, e.g. 02:00.": "Använd HH:MM, t.ex. 02:00.",
    "Watch: every N seconds": "Bevaka: var N:e sekund",
    "Changing the mode? Open the other schedule fields to set its time.": (
        "Byter du läge? Öppna övriga schemafält och ställ in tiden för det nya läget."
    ),
    "Mass-removal guard": "Spärr mot massborttagning",
    "Hold back a run that removes more than this many users": (
        "Håll kvar en körning som tar bort fler användare än så här"
    ),
    "... or more than this share of linked users (0 to 1)": (
        "... eller en större andel av de kopplade användarna än så här (0 till 1)"
    ),
    "Notifications": "Aviseringar",
    "Also notify the admins personally (1:1 chat)": (
        "Avisera även administratörerna personligen (1:1-chatt)"
    ),
    "One card per item up to this many; more become one digest card": (
        "Ett kort per ärende upp till så här många; fler blir ett samlingskort"
    ),
    "Connect an Entra tenant": "Anslut en klientorganisation i Entra",
    "Register an app in Entra (App registrations), give it the Microsoft Graph application "
    "permission **User.Read.All** (and **GroupMember.Read.All** for group scope), grant admin "
    "consent, and create a client secret.": (
        "Registrera en app i Entra (Appregistreringar), ge den Microsoft Graph-"
        "programbehörigheten **User.Read.All** (och **GroupMember.Read.All** för gruppomfång), "
        "bevilja administratörsmedgivande och skapa en klienthemlighet."
    ),
    "Directory (tenant) ID": "Katalog-id (klient-id för organisationen)",
    "Application (client) ID": "Program-id (klient-id)",
    "Client secret (its Value, not its Secret ID)": (
        "Klienthemlighet (dess Värde, inte dess Hemlighets-id)"
    ),
    "The tenant id is required.": "Katalog-id krävs.",
    "The client id is required.": "Klient-id krävs.",
    "The client secret is required.": "Klienthemligheten krävs.",
    "Connection failed.": "Anslutningen misslyckades.",
    "Not an Entra admin? Forward this link to one to grant consent: {link}": (
        "Inte administratör i Entra? Skicka länken till en som kan bevilja medgivande: {link}"
    ),
    "admin consent": "administratörsmedgivande",
    # --- lists, audit, help, preview ---
    "Pending ({n})": "Väntar ({n})",
    "Nothing is pending.": "Inget väntar.",
    "Ignored users ({n})": "Ignorerade användare ({n})",
    "No user is ignored.": "Ingen användare ignoreras.",
    "Recent decisions": "Senaste besluten",
    "No decisions yet.": "Inga beslut ännu.",
    "Entra Sync commands": "Kommandon i Entra Sync",
    "Preview: what a sync would propose": "Förhandsvisning: vad en synk skulle föreslå",
    "A dry run; nothing was changed.": "En provkörning; inget ändrades.",
    "Nothing would change.": "Inget skulle ändras.",
    # --- help: the command table's descriptions (bot.command_table) ---
    "What I can do": "Vad jag kan göra",
    "Connection, last and next sync, synced users, pending": (
        "Anslutning, senaste och nästa synk, synkade användare, väntande"
    ),
    "Read Entra now and propose what changed": "Läs Entra nu och föreslå det som ändrats",
    "Sync one user now": "Synka en användare nu",
    "What waits for a decision, with Accept all / Apply all": (
        "Det som väntar på beslut, med Godkänn alla / Verkställ alla"
    ),
    "Ignored Entra users, with un-ignore": "Ignorerade användare i Entra, med Sluta ignorera",
    "Dry run: what a sync would change, per user": (
        "Provkörning: vad en synk skulle ändra, per användare"
    ),
    "Scope, mapping, schedule, notifications, guard": (
        "Omfång, mappning, schema, aviseringar, spärr"
    ),
    "Connect an Entra tenant (or get an admin-consent link)": (
        "Anslut en klientorganisation i Entra (eller få en länk för administratörsmedgivande)"
    ),
    "Remove the sync; keeps every user and all data": (
        "Ta bort synken; alla användare och all data behålls"
    ),
    "Recent decisions: who, what, when": "Senaste besluten: vem, vad, när",
    "Post sync notifications in this channel": "Skicka synkaviseringar i den här kanalen",
    # --- notices ---
    "That did not work": "Det gick inte",
    "Something went wrong": "Något gick fel",
    "The error was logged.": "Felet loggades.",
    "Something went wrong; the error was logged.": "Något gick fel; felet loggades.",
    "This action could not be read.": "Åtgärden kunde inte läsas.",
    "This bot does not serve this organisation.": "Den här botten betjänar inte organisationen.",
    "Only admins can do this": "Bara administratörer kan göra detta",
    "Only admins and the bot's team can see this": (
        "Bara administratörer och botens team kan se detta"
    ),
    "Nothing waits for a decision.": "Inget väntar på beslut.",
    "Disconnect Entra?": "Koppla från Entra?",
    "This removes the sync: tenant links, credentials and sync settings go.": (
        "Synken tas bort: kopplingar, inloggningsuppgifter och synkinställningar försvinner."
    ),
    "Every directory user and all their data stay as they are.": (
        "Alla användare i katalogen och all deras data blir kvar som de är."
    ),
    "Disconnected": "Frånkopplad",
    "Every directory user and their data were kept.": (
        "Alla användare i katalogen och deras data behölls."
    ),
    "by {name}, {when}": "av {name}, {when}",
    "Nothing was disconnected": "Inget kopplades från",
    "Cancelled, {when}.": "Avbrutet, {when}.",
    "Removals held back by the guard": "Borttagningar hålls kvar av spärren",
    "Nothing was removed. Type 'sync now' to see the current count.": (
        "Inget togs bort. Skriv 'sync now' för att se aktuellt antal."
    ),
    "Done": "Klart",
    "Settings saved": "Inställningarna sparades",
    "They apply from the next sync.": "De gäller från nästa synk.",
    "Could not un-ignore": "Kunde inte sluta ignorera",
    # --- text replies (bot.commands) ---
    "No tenant is configured. Type 'connect' to connect one.": (
        "Ingen klientorganisation är konfigurerad. Skriv 'connect' för att ansluta en."
    ),
    "{where}: failed ({code}).": "{where}: misslyckades ({code}).",
    "{where}: skipped": "{where}: hoppades över",
    "{n} new to decide": "{n} nya att besluta om",
    "{n} applied automatically": "{n} verkställda automatiskt",
    "removals held back by the guard": "borttagningar hålls kvar av spärren",
    "Sync done.": "Synken är klar.",
    "No notification channel yet: type 'notify here' where cards should go.": (
        "Ingen aviseringskanal ännu: skriv 'notify here' där korten ska visas."
    ),
    "Nothing to decide for '{query}'.": "Inget att besluta om för '{query}'.",
    "I will post sync notifications here.": "Jag skickar synkaviseringar här.",
    # --- scope filter ---
    "Advanced filter (Graph $filter on users; empty: no filter)": (
        "Avancerat filter (Graph $filter på användare; tomt: inget filter)"
    ),
    "Microsoft Graph checks the filter before it is saved. With groups, a user must be in both.": (
        "Microsoft Graph kontrollerar filtret innan det sparas. Med grupper måste en användare "
        "finnas i båda."
    ),
    "Check the new scope, then press Confirm and save.": (
        "Kontrollera det nya omfånget och tryck sedan på Bekräfta och spara."
    ),
    "No tenant is connected: the filter applies from the first sync.": (
        "Ingen klientorganisation är ansluten: filtret gäller från första synkroniseringen."
    ),
    "(held back by the mass-removal guard until an admin confirms)": (
        "(hålls tillbaka av spärren mot massborttagning tills en administratör bekräftar)"
    ),
    "Users in scope now": "Användare i omfånget nu",
    "Users in scope with this filter": "Användare i omfånget med filtret",
    "Removals the next sync would propose": "Borttagningar som nästa synk skulle föreslå",
    "Removals are proposals: no user is removed until an admin decides.": (
        "Borttagningar är förslag: ingen användare tas bort förrän en administratör beslutar."
    ),
    "Confirm and save": "Bekräfta och spara",
    # --- per-user views ---
    "Only admins can decide on this item.": "Bara administratörer kan besluta om det här.",
    "Show my actions": "Visa mina åtgärder",
    # --- e-mail notifications ---
    "E-mail notifications": "E\u2011postaviseringar",
    "\u2705 Last mail sent {at} to {n} address": (
        "\u2705 Senaste e\u2011post skickad {at} till {n} adress"
    ),
    "\u2705 Last mail sent {at} to {n} addresses": (
        "\u2705 Senaste e\u2011post skickad {at} till {n} adresser"
    ),
    "\u26a0\ufe0f Last mail failed {at}": "\u26a0\ufe0f Senaste e\u2011post misslyckades {at}",
    "E-mail a digest of each run to (addresses, comma-separated; empty: no mail)": (
        "Skicka en sammanfattning av varje körning med e\u2011post till (adresser, "
        "kommaseparerade; tomt: ingen e\u2011post)"
    ),
    "e.g. servicedesk@contoso.com": "t.ex. servicedesk@contoso.com",
    # --- app credentials ---
    "App credentials": "Appens autentiseringsuppgifter",
    "An app credential expires soon": "En autentiseringsuppgift för appen går snart ut",
    "An app credential has expired": "En autentiseringsuppgift för appen har gått ut",
    # --- pages of pending ---
    "The list changed since that page was shown; this is the current list.": (
        "Listan har ändrats sedan sidan visades; det här är den aktuella listan."
    ),
    "Page {page} of {pages} (items {first}\u2013{last})": (
        "Sida {page} av {pages} (poster {first}\u2013{last})"
    ),
    "\u2026 and {n} more \u2014 type 'pending' or press Next": (
        "\u2026 och {n} till \u2014 skriv 'pending' eller tryck på Nästa"
    ),
    "\u2026 and {n} more \u2014 type 'pending'": "\u2026 och {n} till \u2014 skriv 'pending'",
    "Previous": "Föregående",
    "Next": "Nästa",
    # --- bulk actions ---
    "Accept this match?": "Godkänna den här matchningen?",
    "Accept these {n} matches?": "Godkänna de här {n} matchningarna?",
    "Apply this update?": "Verkställa den här ändringen?",
    "Apply these {n} updates?": "Verkställa de här {n} ändringarna?",
    "Yes, accept {n} match": "Ja, godkänn {n} matchning",
    "Yes, accept {n} matches": "Ja, godkänn {n} matchningar",
    "Yes, apply {n} update": "Ja, verkställ {n} ändring",
    "Yes, apply {n} updates": "Ja, verkställ {n} ändringar",
    "{n} match accepted": "{n} matchning godkänd",
    "{n} matches accepted": "{n} matchningar godkända",
    "{n} update applied": "{n} ändring verkställd",
    "{n} updates applied": "{n} ändringar verkställda",
    "Left out for an individual look ({n}): each keeps its own card (type 'pending').": (
        "Utelämnade för en egen granskning ({n}): var och en behåller sitt eget kort "
        "(skriv 'pending')."
    ),
    "{n} could not be done (already handled, changed, or failed); type 'pending'.": (
        "{n} kunde inte utföras (redan hanterade, ändrade eller misslyckade); skriv 'pending'."
    ),
    "Nothing waits for this action.": "Inget väntar på den här åtgärden.",
    "Nothing was done": "Inget gjordes",
    (
        "The list of items changed since this card was shown, or the card was not issued by "
        "this bot. Press Accept all / Apply all again to see the current list."
    ): (
        "Listan har ändrats sedan kortet visades, eller så kommer kortet inte från den här "
        "boten. Tryck på Godkänn alla / Verkställ alla igen för att se den aktuella listan."
    ),
    "Cancelled by {name}, {at}; nothing was done.": ("Avbrutet av {name}, {at}; inget gjordes."),
    # --- reminders ---
    "{n} day": "{n} dag",
    "{n} days": "{n} dagar",
    "{n} item has waited more than {days}": "{n} post har väntat mer än {days}",
    "{n} items have waited more than {days}": "{n} poster har väntat mer än {days}",
    "waiting since {day}": "väntar sedan {day}",
    "\u2026 and {n} more \u2014 type 'pending' or press Show the list": (
        "\u2026 och {n} till \u2014 skriv 'pending' eller tryck på Visa listan"
    ),
    "To decide them, type 'pending' or press Show the list.": (
        "Skriv 'pending' eller tryck på Visa listan för att besluta om dem."
    ),
    "To decide them, type 'pending'.": "Skriv 'pending' för att besluta om dem.",
    "Show the list": "Visa listan",
}
