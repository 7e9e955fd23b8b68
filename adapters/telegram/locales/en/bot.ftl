## Prompt2Pic bot, English. Every text the bot sends is here; keys match locales/ru/bot.ftl.

## Commands and menus

start =
    Hi, { $name }! I turn a text prompt into a picture.
    Send me a description, for example: a mountain landscape at dawn
    Add parameters if you like: a lighthouse in a storm --ar 16:9 --q fast
    /help shows everything I can do, /settings your defaults.
    { $generator }
help =
    How to get a picture: send a prompt as a message, or /txt2img <prompt>.
    Examples:
    • a mountain landscape at dawn
    • a lighthouse in a storm, oil painting --ar 16:9
    • a cat astronaut --no text, blur --seed 42 --q quality

    Parameters (anywhere in the prompt):
    --ar W:H — aspect ratio from { $low } to { $high }, e.g. { $ratios }
    --no words — what should not be in the picture
    --seed N — a whole number from 0 to 4294967295: the same seed and prompt give the same picture
    --q { $qualities } — speed or quality (auto: the service decides by its load)

    Under each picture: 🔁 new seed, 🎲 variations (×{ $variations }, as one album), 📄 the original PNG{ $links ->
        [button] , 🔗 the full-size link
        [text] ; the full-size link is in the caption
       *[none] {""}
    }, ↗️ share.
    In any chat, type @{ $bot } and a few words to share one of your pictures, or to draw a new one.
    In groups: /txt2img@{ $bot } <prompt>, or reply to one of my messages with a prompt.
    Commands:
    /settings — default aspect ratio, quality, language, photo or document, translation
    /queue — your pictures in progress and their places in line
    /cancel — cancel a picture that is not ready yet
    /history — your last pictures
    Prompts can be up to { $limit } characters. At most { $max_in_flight } pictures in progress and { $per_minute } per minute per user.
    { $generator }
generator-real = 🖼 Pictures here are drawn by the Würstchen v2 model.
generator-tiny = ⚠️ This service runs the model on random test weights: its pictures are noise, not generated images.
generator-placeholder = ⚠️ The image model is not installed on this service: you get placeholders (a drawing of random shapes), not generated images.
generator-unknown = ℹ️ Which model draws here is not known yet: the first picture will say.
cmd-txt2img = Draw a picture from a prompt
cmd-settings = Aspect ratio, quality, language
cmd-queue = Your pictures in progress
cmd-cancel = Cancel a picture in progress
cmd-history = Your last pictures
cmd-balance = What you have left today
cmd-help = Examples and parameters
cmd-start = Start
cmd-stats = Service statistics (admins)

## Live status

status-queued =
    ⏳ Queued: position { $position }, { $eta }.
    { $lane }
    { $prompt }
lane-priority = ⚡ Priority lane
lane-relaxed = 🐢 Relaxed lane: the service is busy, and lighter users go first. Your picture comes, a little later.
status-waiting-service =
    ⏳ Accepted and kept: waiting for the service to come back. Your picture follows; no need to send it again.
    { $prompt }
status-started =
    🎨 Drawing your picture…
    { $prompt }
status-generating =
    🎨 Drawing your picture… { $percent }%
    { $bar }
    { $prompt }
status-uploading =
    💾 Almost done: saving your picture…
    { $prompt }
status-cancelled =
    ✖ Cancelled.
    { $prompt }
duration-seconds = { $n } s
duration-minutes = { $n } min
eta-about = about { $duration }
eta-unknown = the wait is not known yet (the first picture since the start)
eta-unknown-short = time not known yet

## Results

result-details = 🎲 seed { $seed } · 📐 { $width }×{ $height } · ⚙️ quality: { $profile } ({ $reason }) · ⏱ { $seconds } s
result-negative = 🚫 without: { $negative }
result-link = 🔗 Full size: { $url }
album-buttons = 🎲 { $count } variations of: { $prompt }
result-understood = 💬 understood as: { $prompt }
result-understood-negative = 💬 understood as: { $prompt } · 🚫 { $negative }
result-translation-failed = ⚠️ I could not translate the prompt: the model read it as written.
result-placeholder = ⚠️ A placeholder, not a generated image: the model is not installed.
result-random-translation = 🔤 Translated by a test model with random weights: its English is gibberish, so it is not shown.
result-tiny = ⚠️ Random test weights: this picture is noise, not a generated image.
result-cut = ✂️ The model reads only the first { $limit } tokens; not read: { $words }
quality-reason-requested = as you asked
quality-reason-default = the service default
quality-reason-busy = the service is busy, so a faster profile
quality-reason-quiet = the service is quiet enough for it
quality-reason-capped = the best these servers make
quality-auto = auto
quality-fast = fast
quality-balanced = balanced
quality-quality = quality
original-caption = The original PNG, byte for byte.
failed =
    Sorry, I could not make that picture: { $reason }
    { $prompt }
    You can try again with the button or send the prompt again.
reason-generation_failed = the generator failed
reason-storage_unavailable = the image storage is unavailable right now
reason-invalid_job = the request was invalid
reason-too_many_attempts = it failed several times
reason-cancelled = it was cancelled
reason-delivery_refused = Telegram would not take the picture
reason-queue_unavailable = the service could not take it for too long

## Buttons

button-new-seed = 🔁 New seed
button-variations = 🎲 Variations ×{ $count }
button-png = 📄 Original PNG
button-link = 🔗 Open full size
button-retry = 🔁 Try again
button-cancel = ✖ Cancel
button-cancel-one = ✖ { $n }. { $prompt }
button-cancel-all = ✖ Cancel all
button-history-link = 🔗 { $n }
button-history-png = 📄 { $n }
button-album-new-seed = 🔁 { $n }
button-album-png = 📄 { $n }
button-share = ↗️ Share
button-copy = 📋 Copy prompt
answer-new-seed = 🔁 A new seed: queued
answer-variations = 🎲 { $count } variations: queued
answer-png = 📄 Sending the original PNG…
answer-job-forgotten = I no longer have this picture. Please send the prompt again.
answer-not-yours = Sorry, this picture is not yours, so its buttons do not work for you.
answer-settings-not-yours = These are someone else's settings. Send /settings to change yours.
answer-button-dead = This button no longer works. Send the prompt again, or see /help.

## /settings

settings =
    ⚙️ Your settings
    Aspect ratio: { $aspect }
    Quality: { $quality }
    Language: { $language }
    Send pictures as: { $send_as }
    Prompts for the model: { $translate }
    Tap a button to change. Parameters in a prompt (--ar, --q) win over these.
settings-aspect-auto = default
settings-aspect-default = default ({ $width }×{ $height })
settings-language-auto = from Telegram ({ $language })
settings-saved = ✓ Saved
language-auto = 🌐 From Telegram
language-en = English
language-ru = Русский
send-as-photo = 🖼 Photo
send-as-document = 📄 File (PNG)
translate-on = 🔤 Translated into English
translate-off = ✍️ As written
translate-unavailable = ✍️ As written: this service does not translate prompts now

## /queue, /cancel, /history

queue-empty = You have no pictures in progress. Jobs in the service's queue: { $depth }.
queue-header = Your pictures in progress: { $count } (jobs in the service's queue: { $depth })
queue-line = { $n }. { $prompt } — { $state }
queue-waiting = queued, position { $position }, { $eta }
queue-started = drawing
queue-running = drawing, { $percent }%
queue-uploading = saving
cancel-nothing = You have no pictures in progress to cancel.
cancel-choose = You have { $count } pictures in progress. Which one should I cancel?
cancel-done =
    { $count ->
        [1] ✖ Cancelled: { $prompt }
       *[other] ✖ Cancelled { $count } pictures.
    }
cancel-answer = ✖ Cancelling…
cancel-too-late = This picture is already finished or cancelled.
history-empty = You have no pictures yet. Send a prompt to make one.
history-header = Your last { $count } pictures ({ $links ->
        [button] links open the full size
       *[other] buttons send the original PNG
    }):
history-line = { $n }. { $prompt } — seed { $seed }, { $width }×{ $height }

## /stats

stats =
    📊 Today (UTC)
    Queue depth: { $depth } · in progress: { $in_flight }
    Jobs: { $submitted } submitted, { $done } done, { $failed } failed, { $cancelled } cancelled
    Users: { $users } · blocked the bot: { $blocked }
    Messages sent by this instance: { $sent } (retries: { $retried })
    Workers seen: { $workers }
stats-worker = • { $worker } — { $ago } ago
stats-no-workers = • none yet

## Errors: nothing was queued

error-invalid_request = I could not accept that request. See /help for examples.
error-empty_prompt = The prompt is empty. Write what to draw, for example: /txt2img a sunset over the ocean
error-prompt_too_long = The prompt is too long: { $length } characters, at most { $limit }. Please shorten it.
error-prompt_control_characters = The prompt contains control characters. Please send plain text.
error-prompt_no_content = The prompt has no words to draw from. Please describe the picture in words.
error-unsupported_size = Size { $width }×{ $height } is not supported: each side must be { $min_side }–{ $max_side } and a multiple of { $multiple }.
error-invalid_seed = The seed must be a whole number from 0 to 4294967295, not “{ $value }”. Example: --seed 42
error-unknown_parameter = I don't know the parameter { $name }. Valid parameters: { $valid }. See /help.
error-missing_parameter_value = The parameter { $name } needs a value, for example: { $example }
error-invalid_aspect_ratio = The aspect ratio “{ $value }” is not supported: use W:H from { $low } to { $high }, for example { $examples }.
error-invalid_quality = Unknown quality “{ $value }”. Valid values: { $valid }.
error-too_many_in_flight = You already have { $in_flight } pictures in progress (at most { $limit }{ $requested ->
        [1] {""}
       *[other] {""}; this asks for { $requested } more
    }). Try again when one is ready ({ $wait }). /queue shows them.
error-rate_limited = That's more than { $limit } pictures a minute. Try again in { $wait }.
error-access_denied = Sorry, this bot is private. Ask its owner to add your id: { $user_id }
error-admins_only = /stats is for the bot's admins.
error-unknown_command = I don't know the command { $command }. See /help.
error-job_forgotten = I no longer have the details of that picture. Please send the prompt again.
error-original_gone = The original of that picture is no longer stored.
error-original_refused = Telegram would not take the original PNG (files over 50 MB are refused).
error-queue_unavailable = The service could not take the prompt for too long, so it was dropped. Please send it again.
error-not_text = I understand text prompts only. Describe the picture in words.
error-internal = Something went wrong on our side and this message was not taken. Please send it again in a minute.

## Content safety (issue 18): refusals never repeat the matched word

error-prompt_refused = 🚫 This request is not allowed here, so nothing was drawn. Please ask for something else.
reason-prompt_refused = the request is not allowed here
reason-image_refused = the picture did not pass the content check
refused-image = 🚫 The picture did not pass the content check, so it is not shown. You can try a different prompt.
result-sensitive = ⚠️ Marked as sensitive: tap the picture to see it.
button-report = ⚠️ Report
answer-report = ⚠️ Thank you: the picture was sent to the moderators.
answer-report-again = You have reported this picture already.
answer-report-gone = This picture can no longer be reported.
answer-report-nobody = Reports are not collected here: this bot has no moderators.
report-admin =
    ⚠️ Report from { $name } (id { $user_id }), job { $job_id }
    Prompt: { $prompt }
    To block the user: /ban { $user_id }
banned-notice = 🚫 You are blocked from using this bot. Your messages are ignored from now on.
cmd-ban = Block a user (admins)
cmd-unban = Unblock a user (admins)
error-admins_only_command = { $command } is for the bot's admins.
ban-usage = Usage: /ban <user id> or /unban <user id>, for example /ban 123456789
ban-done = 🚫 User { $user_id } is blocked. They will be told once; their messages are ignored.
ban-already = User { $user_id } was blocked already.
ban-admin = User { $user_id } is an admin and cannot be blocked.
unban-done = ✅ User { $user_id } is unblocked.
unban-not-banned = User { $user_id } was not blocked.
stats-safety =
    🛡 Safety since the bot started: prompts refused { $refused } here and { $refused_worker } by workers
    Pictures refused: { $images_refused } · sent behind a spoiler: { $spoilers } · reports: { $reports }
    Users blocked by admins: { $banned }

## Inline mode

inline-generate = 🎨 Draw “{ $prompt }”
inline-open = 🎨 Draw a new picture
inline-expired = That request has expired. Send me the prompt here, or type @ and my name in a chat again.

# Guest mode: the bot mentioned in a chat it may not be a member of (its answer is public there)
guest-title = 🎨 Prompt2Pic
guest-refused = 🚫 I can't draw for you.
guest-needs-chat =
    ✅ The picture for “{ $prompt }” is ready, but Telegram lets me show it here only after you have started a chat with me.
    Open @{ $bot }, press Start, then ask again.

## Telegram Stars (PAYMENTS=stars)

cmd-buy = Buy credits with Telegram Stars
cmd-credits = Your credits
cmd-paysupport = Help with a payment
cmd-terms = Terms of sale
cmd-refund = Refund a payment: /refund <charge id>
buy-packs =
    ⭐ Credits: each one is a full-quality picture, drawn first, even when the service is busy.
    A credit is used on your next prompt; if no picture comes, it comes back by itself.
    You have { $credits }. Pick a pack (paid in Telegram Stars):
buy-pack-button = { $credits ->
    [one] { $credits } picture
   *[other] { $credits } pictures
} for { $stars } ⭐
invoice-title = { $credits ->
    [one] { $credits } priority picture
   *[other] { $credits } priority pictures
}
invoice-description = { $credits ->
    [one] { $credits } credit
   *[other] { $credits } credits
}: each is one full-quality picture, drawn first. A credit comes back if its picture does not come. /terms, /paysupport
invoice-label = { $credits ->
    [one] { $credits } credit
   *[other] { $credits } credits
}
pay-refused-banned = You are blocked from using this bot, so it cannot sell you anything. No Stars were taken.
pay-refused-unknown_pack = This pack is not sold at this price any more. Send /buy to see the packs. No Stars were taken.
pay-refused-off = This bot does not sell anything now. No Stars were taken.
pay-refused-unavailable = The payment cannot be checked right now. No Stars were taken: please try again a little later.
pay-thanks = ✅ Thank you! { $credits ->
    [one] { $credits } credit
   *[other] { $credits } credits
} added: you have { $balance }. Your next prompts are drawn first, at full quality.
pay-unknown = Your payment arrived, but I cannot tell which pack it was for. Send /paysupport: it will be put right or refunded.
pay-off = This bot does not sell anything.
credits-balance = ⭐ Credits: { $credits } (each is one full-quality picture, drawn first). /buy for more.
paysupport = For any question about a payment (a pack not credited, a refund), write to { $contact } with the date of the payment. Telegram's own support cannot help with purchases made in bots.
paysupport-here = the bot's admins, here in this chat
terms =
    Terms of sale
    • A credit is one picture made at full quality and drawn before the free ones. It is used on your next prompt.
    • A picture that does not come (an error, a refused prompt or picture, a cancelled job) gives its credit back.
    • Credits do not expire. Unused credits can be refunded in Stars: send /paysupport.
    • Payments are in Telegram Stars; the service is provided as is, on the machines available.
terms-more = The full terms: { $url }
refund-usage = Usage: /refund <charge id> (the telegram_payment_charge_id of the payment)
refund-unknown = No payment with charge id { $charge_id } is known here.
refund-refused = Telegram refused the refund of { $charge_id }: { $reason }
refund-done = ↩️ Refunded { $stars } ⭐ to user { $user_id } (charge { $charge_id }); { $taken } of its { $credits } credits taken back (the rest were spent).
refund-already = Charge { $charge_id } was refunded already; { $taken } of its { $credits } credits were taken back then.
error-refund_refused = The refund of { $charge_id } was refused: { $reason }
pay-refused-not_allowed = This bot is open to some users only, so it cannot sell to you. No Stars were taken.

## /balance

balance-header = 📊 Your balance
balance-next-priority = Your next picture: ⚡ priority lane.
balance-next-relaxed = Your next picture: 🐢 relaxed lane (when the service is busy, lighter users go first; nothing is refused).
balance-recent = Pictures in the last { $window }: { $count }. From { $limit } on, your pictures wait in the relaxed lane.
balance-no-allowance = No daily allowance on this service.
balance-allowance = Priority pictures left today: { $left } of { $total }. Renews at { $at } (in { $wait }).
