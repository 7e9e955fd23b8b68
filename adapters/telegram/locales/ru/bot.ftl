## Бот Prompt2Pic, русский. Здесь все тексты бота; ключи совпадают с locales/en/bot.ftl.

## Команды и меню

start =
    Привет, { $name }! Я превращаю текстовое описание в картинку.
    Пришлите описание, например: горный пейзаж на рассвете
    Можно добавить параметры: маяк во время шторма --ar 16:9 --q fast
    /help — всё, что я умею, /settings — ваши настройки.
    { $generator }
help =
    Как получить картинку: пришлите описание сообщением или командой /txt2img <описание>.
    Примеры:
    • горный пейзаж на рассвете
    • маяк во время шторма, масляная живопись --ar 16:9
    • кот-космонавт --no текст, размытие --seed 42 --q quality

    Параметры (в любом месте описания):
    --ar Ш:В — соотношение сторон от { $low } до { $high }, например { $ratios }
    --no слова — чего не должно быть на картинке
    --seed N — целое число от 0 до 4294967295: тот же seed и описание дают ту же картинку
    --q { $qualities } — скорость или качество (auto: сервис решает сам по нагрузке)

    Под каждой картинкой: 🔁 новый seed, 🎲 варианты (×{ $variations }, одним альбомом), 📄 оригинал PNG{ $links ->
        [button] , 🔗 ссылка на полный размер
        [text] ; ссылка на полный размер — в подписи
       *[none] {""}
    }, ↗️ поделиться.
    В любом чате наберите @{ $bot } и пару слов, чтобы поделиться своей картинкой или нарисовать новую.
    В группах: /txt2img@{ $bot } <описание> или ответ на моё сообщение с описанием.
    Команды:
    /settings — соотношение сторон, качество, язык, фото или файл, перевод
    /queue — ваши картинки в работе и их места в очереди
    /cancel — отменить картинку, которая ещё не готова
    /history — ваши последние картинки
    Описание — до { $limit } символов. Не больше { $max_in_flight } картинок в работе и { $per_minute } в минуту на человека.
    { $generator }
generator-real = 🖼 Картинки здесь рисует модель Würstchen v2.
generator-tiny = ⚠️ Модель здесь работает на случайных тестовых весах: картинки получаются шумом, а не настоящими изображениями.
generator-placeholder = ⚠️ На этом сервисе не установлена модель: вместо сгенерированных картинок приходят заглушки (случайные фигуры).
generator-unknown = ℹ️ Какая модель здесь рисует, пока неизвестно: это станет ясно по первой картинке.
cmd-txt2img = Нарисовать картинку по описанию
cmd-settings = Соотношение сторон, качество, язык
cmd-queue = Ваши картинки в работе
cmd-cancel = Отменить картинку в работе
cmd-history = Ваши последние картинки
cmd-balance = Сколько у вас осталось на сегодня
cmd-help = Примеры и параметры
cmd-start = Начало
cmd-stats = Статистика сервиса (для админов)

## Живой статус

status-queued =
    ⏳ В очереди: место { $position }, { $eta }.
    { $lane }
    { $prompt }
lane-priority = ⚡ Приоритетная очередь
lane-relaxed = 🐢 Спокойная очередь: сервис загружен, и сначала идут те, кто рисует реже. Ваша картинка будет, чуть позже.
status-waiting-service =
    ⏳ Принято и сохранено: ждём, пока сервис снова станет доступен. Картинка придёт, отправлять ещё раз не нужно.
    { $prompt }
status-started =
    🎨 Рисую вашу картинку…
    { $prompt }
status-generating =
    🎨 Рисую вашу картинку… { $percent }%
    { $bar }
    { $prompt }
status-uploading =
    💾 Почти готово: сохраняю картинку…
    { $prompt }
status-cancelled =
    ✖ Отменено.
    { $prompt }
duration-seconds = { $n } с
duration-minutes = { $n } мин
eta-about = примерно { $duration }
eta-unknown = время ожидания пока неизвестно (первая картинка после запуска)
eta-unknown-short = время пока неизвестно

## Результаты

result-details = 🎲 seed { $seed } · 📐 { $width }×{ $height } · ⚙️ качество: { $profile } ({ $reason }) · ⏱ { $seconds } с
result-negative = 🚫 без: { $negative }
result-link = 🔗 Полный размер: { $url }
album-buttons = 🎲 Варианты ({ $count }): { $prompt }
result-understood = 💬 понял как: { $prompt }
result-understood-negative = 💬 понял как: { $prompt } · 🚫 { $negative }
result-translation-failed = ⚠️ Не удалось перевести описание: модель прочла его как есть.
result-placeholder = ⚠️ Это заглушка, а не сгенерированная картинка: модель не установлена.
result-random-translation = 🔤 Перевёл тестовый переводчик со случайными весами: его английский — бессмыслица, поэтому он не показан.
result-tiny = ⚠️ Случайные тестовые веса: эта картинка — шум, а не работа модели.
result-cut = ✂️ Модель читает только первые { $limit } токенов, не прочитано: { $words }
quality-reason-requested = как вы просили
quality-reason-default = по умолчанию сервиса
quality-reason-busy = сервис загружен, поэтому быстрее
quality-reason-quiet = сервис достаточно свободен
quality-reason-capped = лучшее, что рисуют эти серверы
quality-auto = авто
quality-fast = быстро
quality-balanced = сбалансированно
quality-quality = максимум
original-caption = Оригинал PNG, байт в байт.
failed =
    Не удалось сделать картинку: { $reason }
    { $prompt }
    Попробуйте ещё раз кнопкой или пришлите описание снова.
reason-generation_failed = сбой генератора
reason-storage_unavailable = хранилище изображений сейчас недоступно
reason-invalid_job = запрос некорректен
reason-too_many_attempts = несколько попыток закончились ошибкой
reason-cancelled = задача отменена
reason-delivery_refused = Telegram не принял картинку
reason-queue_unavailable = сервис слишком долго не мог принять задачу

## Кнопки

button-new-seed = 🔁 Новый seed
button-variations = 🎲 Варианты ×{ $count }
button-png = 📄 Оригинал PNG
button-link = 🔗 Открыть в полном размере
button-retry = 🔁 Попробовать снова
button-cancel = ✖ Отменить
button-cancel-one = ✖ { $n }. { $prompt }
button-cancel-all = ✖ Отменить все
button-history-link = 🔗 { $n }
button-history-png = 📄 { $n }
button-album-new-seed = 🔁 { $n }
button-album-png = 📄 { $n }
button-share = ↗️ Поделиться
button-copy = 📋 Копировать запрос
answer-new-seed = 🔁 Новый seed: в очереди
answer-variations = 🎲 Варианты ({ $count }): в очереди
answer-png = 📄 Отправляю оригинал PNG…
answer-job-forgotten = Этой картинки у меня больше нет. Пришлите описание ещё раз.
answer-not-yours = Извините, это не ваша картинка, поэтому её кнопки для вас не работают.
answer-settings-not-yours = Это чужие настройки. Чтобы изменить свои, отправьте /settings.
answer-button-dead = Эта кнопка больше не работает. Пришлите описание заново или загляните в /help.

## /settings

settings =
    ⚙️ Ваши настройки
    Соотношение сторон: { $aspect }
    Качество: { $quality }
    Язык: { $language }
    Присылать картинки: { $send_as }
    Описание для модели: { $translate }
    Нажмите кнопку, чтобы изменить. Параметры в описании (--ar, --q) важнее этих настроек.
settings-aspect-auto = по умолчанию
settings-aspect-default = по умолчанию ({ $width }×{ $height })
settings-language-auto = как в Telegram ({ $language })
settings-saved = ✓ Сохранено
language-auto = 🌐 Как в Telegram
language-en = English
language-ru = Русский
send-as-photo = 🖼 Фото
send-as-document = 📄 Файлом (PNG)
translate-on = 🔤 Перевод на английский
translate-off = ✍️ Как написано
translate-unavailable = ✍️ Как написано: сейчас сервис не переводит описания

## /queue, /cancel, /history

queue-empty = У вас нет картинок в работе. Задач в очереди сервиса: { $depth }.
queue-header = Ваши картинки в работе: { $count } (задач в очереди сервиса: { $depth })
queue-line = { $n }. { $prompt } — { $state }
queue-waiting = в очереди, место { $position }, { $eta }
queue-started = рисую
queue-running = рисую, { $percent }%
queue-uploading = сохраняю
cancel-nothing = У вас нет картинок в работе, отменять нечего.
cancel-choose = У вас в работе картинок: { $count }. Какую отменить?
cancel-done =
    { $count ->
        [1] ✖ Отменено: { $prompt }
       *[other] ✖ Отменено картинок: { $count }.
    }
cancel-answer = ✖ Отменяю…
cancel-too-late = Эта картинка уже готова или отменена.
history-empty = У вас пока нет картинок. Пришлите описание, чтобы сделать первую.
history-header = Ваши последние картинки ({ $count }), { $links ->
        [button] ссылки открывают полный размер
       *[other] кнопки присылают оригинал PNG
    }:
history-line = { $n }. { $prompt } — seed { $seed }, { $width }×{ $height }

## /stats

stats =
    📊 Сегодня (UTC)
    Очередь: { $depth } · в работе: { $in_flight }
    Задачи: принято { $submitted }, готово { $done }, ошибок { $failed }, отменено { $cancelled }
    Пользователей: { $users } · заблокировали бота: { $blocked }
    Сообщений отправлено этим экземпляром: { $sent } (повторов: { $retried })
    Воркеров замечено: { $workers }
stats-worker = • { $worker } — { $ago } назад
stats-no-workers = • пока ни одного

## Ошибки: ничего не поставлено в очередь

error-invalid_request = Не получилось принять запрос. Примеры — в /help.
error-empty_prompt = Описание пустое. Напишите, что нарисовать, например: /txt2img закат над океаном
error-prompt_too_long = Описание слишком длинное: { $length } символов, можно не больше { $limit }. Сократите его, пожалуйста.
error-prompt_control_characters = В описании есть управляющие символы. Пришлите обычный текст.
error-prompt_no_content = В описании нет слов, из которых можно нарисовать картинку. Опишите её словами.
error-unsupported_size = Размер { $width }×{ $height } не поддерживается: каждая сторона от { $min_side } до { $max_side } и кратна { $multiple }.
error-invalid_seed = Seed должен быть целым числом от 0 до 4294967295, а не «{ $value }». Пример: --seed 42
error-unknown_parameter = Я не знаю параметр { $name }. Допустимые параметры: { $valid }. Подробнее — в /help.
error-missing_parameter_value = У параметра { $name } нет значения, например: { $param ->
        [no] --no текст, размытие
       *[other] { $example }
    }
error-invalid_aspect_ratio = Соотношение сторон «{ $value }» не поддерживается: укажите Ш:В от { $low } до { $high }, например { $examples }.
error-invalid_quality = Неизвестное качество «{ $value }». Допустимые значения: { $valid }.
error-too_many_in_flight = У вас уже { $in_flight } в работе (не больше { $limit }{ $requested ->
        [1] {""}
       *[other] {""}; здесь просят ещё { $requested }
    }). Попробуйте снова, когда одна будет готова ({ $wait }). Список — в /queue.
error-rate_limited = Это больше { $limit } картинок в минуту. Попробуйте снова через { $wait }.
error-access_denied = Извините, это закрытый бот. Попросите владельца добавить ваш id: { $user_id }
error-admins_only = /stats — только для админов бота.
error-unknown_command = Я не знаю команду { $command }. Список — в /help.
error-job_forgotten = Я больше не помню подробностей этой картинки. Пришлите описание ещё раз.
error-original_gone = Оригинала этой картинки больше нет в хранилище.
error-original_refused = Telegram не принял оригинал PNG (файлы больше 50 МБ не принимаются).
error-queue_unavailable = Сервис слишком долго не мог принять описание, и оно отменено. Пожалуйста, отправьте его ещё раз.
error-not_text = Я понимаю только текстовые описания. Опишите картинку словами.
error-internal = У нас что-то пошло не так, и это сообщение не принято. Пожалуйста, отправьте его ещё раз через минуту.

## Безопасность содержимого (issue 18): отказ никогда не повторяет найденное слово

error-prompt_refused = 🚫 Такой запрос здесь не разрешён, поэтому картинка не рисовалась. Попросите что-нибудь другое.
reason-prompt_refused = такой запрос здесь не разрешён
reason-image_refused = картинка не прошла проверку содержимого
refused-image = 🚫 Картинка не прошла проверку содержимого, поэтому не показана. Попробуйте другой запрос.
result-sensitive = ⚠️ Помечено как деликатное: нажмите на картинку, чтобы открыть.
button-report = ⚠️ Пожаловаться
answer-report = ⚠️ Спасибо: картинка отправлена модераторам.
answer-report-again = Вы уже пожаловались на эту картинку.
answer-report-gone = На эту картинку больше нельзя пожаловаться.
answer-report-nobody = Жалобы здесь не принимаются: у этого бота нет модераторов.
report-admin =
    ⚠️ Жалоба от { $name } (id { $user_id }), задача { $job_id }
    Запрос: { $prompt }
    Заблокировать пользователя: /ban { $user_id }
banned-notice = 🚫 Вам закрыт доступ к этому боту. Ваши сообщения больше не обрабатываются.
cmd-ban = Заблокировать пользователя (для админов)
cmd-unban = Разблокировать пользователя (для админов)
error-admins_only_command = { $command } — только для админов бота.
ban-usage = Как использовать: /ban <id пользователя> или /unban <id пользователя>, например /ban 123456789
ban-done = 🚫 Пользователь { $user_id } заблокирован. Ему скажут об этом один раз; его сообщения не обрабатываются.
ban-already = Пользователь { $user_id } уже был заблокирован.
ban-admin = Пользователь { $user_id } — админ, его нельзя заблокировать.
unban-done = ✅ Пользователь { $user_id } разблокирован.
unban-not-banned = Пользователь { $user_id } не был заблокирован.
stats-safety =
    🛡 Безопасность с запуска бота: отклонено запросов здесь: { $refused }, воркерами: { $refused_worker }
    Отклонено картинок: { $images_refused } · отправлено под спойлером: { $spoilers } · жалоб: { $reports }
    Заблокировано админами: { $banned }

## Inline mode

inline-generate = 🎨 Нарисовать «{ $prompt }»
inline-open = 🎨 Нарисовать новую картинку
inline-expired = Этот запрос устарел. Пришлите описание сюда или снова наберите @ и моё имя в чате.

# Guest mode: the bot mentioned in a chat it may not be a member of (its answer is public there)
guest-title = 🎨 Prompt2Pic
guest-refused = 🚫 Я не могу рисовать для вас.
guest-needs-chat =
    ✅ Картинка для «{ $prompt }» готова, но Telegram разрешает мне показать её здесь, только если вы уже начали чат со мной.
    Откройте @{ $bot }, нажмите «Старт» и попросите ещё раз.

## Telegram Stars (PAYMENTS=stars)

cmd-buy = Купить кредиты за Telegram Stars
cmd-credits = Ваши кредиты
cmd-paysupport = Помощь с оплатой
cmd-terms = Условия продажи
cmd-refund = Вернуть платёж: /refund <charge id>
buy-packs =
    ⭐ Кредиты: каждый — одна картинка в полном качестве, без очереди, даже когда сервис занят.
    Кредит тратится на ваш следующий запрос; если картинка не придёт, он вернётся сам.
    У вас { $credits }. Выберите пакет (оплата в Telegram Stars):
buy-pack-button = { $credits ->
    [one] { $credits } картинка
    [few] { $credits } картинки
   *[many] { $credits } картинок
} за { $stars } ⭐
invoice-title = { $credits ->
    [one] { $credits } картинка
    [few] { $credits } картинки
   *[many] { $credits } картинок
} без очереди
invoice-description = Кредитов: { $credits }. Каждый — одна картинка в полном качестве, без очереди. Если картинка не придёт, кредит вернётся. /terms, /paysupport
invoice-label = Кредитов: { $credits }
pay-refused-banned = Вам закрыт доступ к этому боту, поэтому он ничего не может вам продать. Звёзды не списаны.
pay-refused-unknown_pack = Этот пакет больше не продаётся по этой цене. Отправьте /buy, чтобы увидеть пакеты. Звёзды не списаны.
pay-refused-off = Сейчас бот ничего не продаёт. Звёзды не списаны.
pay-refused-unavailable = Сейчас не удаётся проверить оплату. Звёзды не списаны: попробуйте чуть позже.
pay-thanks = ✅ Спасибо! Добавлено кредитов: { $credits }, всего у вас { $balance }. Следующие запросы — без очереди и в полном качестве.
pay-unknown = Оплата пришла, но я не понимаю, за какой она пакет. Напишите /paysupport: всё исправят или вернут звёзды.
pay-off = Этот бот ничего не продаёт.
credits-balance = ⭐ Кредиты: { $credits } (каждый — одна картинка в полном качестве, без очереди). /buy — купить ещё.
paysupport = По любому вопросу об оплате (пакет не зачислен, возврат) пишите { $contact }, указав дату платежа. Поддержка Telegram не помогает с покупками в ботах.
paysupport-here = админам бота, прямо в этот чат
terms =
    Условия продажи
    • Кредит — одна картинка в полном качестве, которая рисуется раньше бесплатных. Он тратится на ваш следующий запрос.
    • Если картинка не пришла (ошибка, отклонённый запрос или картинка, отменённая задача), кредит возвращается.
    • Кредиты не сгорают. Неиспользованные кредиты можно вернуть в звёздах: напишите /paysupport.
    • Оплата — в Telegram Stars; сервис предоставляется как есть, на доступных машинах.
terms-more = Полные условия: { $url }
refund-usage = Использование: /refund <charge id> (telegram_payment_charge_id платежа)
refund-unknown = Платёж с charge id { $charge_id } здесь неизвестен.
refund-refused = Telegram отказал в возврате { $charge_id }: { $reason }
refund-done = ↩️ Возвращено { $stars } ⭐ пользователю { $user_id } (платёж { $charge_id }); списано кредитов: { $taken } из { $credits } (остальные уже потрачены).
refund-already = Платёж { $charge_id } уже возвращён; тогда списано кредитов: { $taken } из { $credits }.
error-refund_refused = В возврате { $charge_id } отказано: { $reason }
pay-refused-not_allowed = Этот бот доступен не всем, поэтому не может вам ничего продать. Звёзды не списаны.

## /balance

balance-header = 📊 Ваш баланс
balance-next-priority = Следующая картинка: ⚡ приоритетная очередь.
balance-next-relaxed = Следующая картинка: 🐢 спокойная очередь (когда сервис загружен, сначала идут те, кто рисует реже; отказа не будет).
balance-recent = Картинок за последние { $window }: { $count }. С { $limit }-й ваши картинки ждут в спокойной очереди.
balance-no-allowance = Дневного лимита на этом сервисе нет.
balance-allowance = Приоритетных картинок на сегодня осталось: { $left } из { $total }. Обновится в { $at } (через { $wait }).
