start =
    Hi, { $name }! I turn a text prompt into a picture.
    Send me a description, for example: a mountain landscape at dawn
    /help shows the details.
help =
    Send a prompt as a message, or use /txt2img <prompt>.
    Examples:
    • a mountain landscape at dawn
    • a lighthouse in a storm, oil painting
    Prompts can be up to { $limit } characters. You get the picture and a link to the full-size file.
queued = Queued: position { $position }. I'll send the picture as soon as it is ready.
progress-started = Generating your picture…
progress-generating = Generating your picture… { $percent }%
progress-uploading = Almost done: saving your picture…
result-caption =
    { $prompt }
    Seed { $seed } · { $width }×{ $height } · quality: { $profile } · { $seconds } s
button-link = Open full size
failed = Sorry, I could not make that picture: { $reason }
    You can send the prompt again.
reason-generation_failed = the generator failed
reason-storage_unavailable = the image storage is unavailable right now
reason-invalid_job = the request was invalid
reason-too_many_attempts = it failed several times
reason-cancelled = it was cancelled
error-empty_prompt = The prompt is empty. Write what to draw, for example: /txt2img a sunset over the ocean
error-prompt_too_long = The prompt is too long: { $length } characters, at most { $limit }. Please shorten it.
error-prompt_control_characters = The prompt contains control characters. Please send plain text.
error-prompt_no_content = The prompt has no words to draw from. Please describe the picture in words.
error-unsupported_size = Size { $width }×{ $height } is not supported: each side must be { $min_side }–{ $max_side } and a multiple of { $multiple }.
error-invalid_seed = The seed must be a whole number from 0 to { $max }.
error-queue_unavailable = The service is busy right now and could not accept the prompt. Please try again in a minute.
error-not_text = I understand text prompts only. Describe the picture in words.
