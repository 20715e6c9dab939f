"""The labels people write before personal values, in the languages an agent's users write in.

English labels, with their abbreviations and OCR forms, live in the cue rules of `slmlab.curate.context`;
this module holds the same notions in other languages, one tuple per kind, as regex fragments matched
case-insensitively. Latin, Cyrillic, Greek, Arabic and Devanagari labels must stand as whole words; Chinese,
Japanese, Korean and Thai ones may touch the words around them (they are written without spaces, and Korean adds
its particles to the label: "환자번호는").

To support a new language, add its words to each tuple and an example sentence to
`tests/test_curate_text_forms.py`.
"""

from __future__ import annotations

import re

#: medical record / patient / chart numbers (Safe Harbor #8)
MRN_LABELS = (
    r"מס(?:פר|'|׳)?\s+תיק(?:\s+רפואי)?",  # Hebrew: (medical) file number
    r"شماره\s+پرونده",  # Persian
    # Dutch, German, Swedish, Danish, Norwegian
    r"pati[eë]nt(?:en)?nummer",
    r"dossiernummer",
    r"fallnummer",
    r"patient-?nr\.?",
    r"journalnummer",
    r"patientnummer",
    # Italian, Polish, Czech, Romanian
    r"numero\s+(?:di\s+)?cartella(?:\s+clinica)?",
    r"codice\s+paziente",
    r"id\s+paziente",
    r"numer\s+(?:karty\s+)?pacjenta",
    r"(?:numer|nr\.?)\s+historii\s+choroby",
    r"karta\s+pacjenta",
    r"č[íi]slo\s+pacienta",
    r"num[ăa]r(?:ul)?\s+(?:de\s+)?(?:fi[șs][ăa]|dosar)",
    # Turkish, Indonesian / Malay, Tagalog
    r"hasta\s+(?:numaras[ıi]|no|dosya\s+no)",
    r"protokol\s+no",
    r"(?:nomor|no\.?)\s+rekam\s+medis",
    r"rekam\s+medis",
    r"nombor\s+pesakit",
    r"numero\s+ng\s+pasyente",
    # Portuguese, Spanish, French (beyond the English-style cues of `context`)
    r"n[úu]mero\s+do\s+paciente",
    r"n[úu]mero\s+de\s+paciente",
    r"registro\s+(?:m[ée]dico|hospitalar)",
    r"num[ée]ro\s+(?:de\s+)?patient",
    r"ipp",
    # Russian, Ukrainian, Greek
    r"номер\s+(?:медицинской\s+)?карты(?:\s+пациента)?",
    r"медицинская\s+карта",
    r"номер\s+пациента",
    r"номер\s+медичн\w*\s+карт\w*",
    r"เลขที่โรงพยาบาล",  # Thai
    r"เลขประจำตัวผู้ป่วย",
    r"αριθμ[οό]ς\s+μητρ[ώω]ου",
    # Arabic, Hebrew, Hindi
    r"رقم\s+الملف(?:\s+الطبي)?",
    r"رقم\s+المريض",
    r"מספר\s+תיק",
    r"मरीज़?\s+(?:संख्या|नंबर|आईडी)",
    r"रोगी\s+(?:संख्या|नंबर|आईडी)",
    r"पंजीकरण\s+(?:संख्या|नंबर)",
    r"uhid",  # India's hospital id, written in Latin letters in Hindi text
    # Chinese, Japanese, Korean (no word boundaries)
    r"病[历歷]号",
    r"病案号",
    r"患者(?:编号|編號|番号|ID)",
    r"住院号",
    r"门诊号",
    r"診察券番号",
    r"カルテ番号",
    r"患者番号",
    r"환자\s*번호",
    r"등록\s*번호",
    r"차트\s*번호",
)

#: member / subscriber / policy / insurance card numbers (Safe Harbor #9)
MEMBER_LABELS = (
    r"(?:num[ée]ro|n[°º])\s*(?:de\s+|du\s+)?contrat",  # French: an insurance contract
    r"מספר\s+(?:חבר|מבוטח|פוליסה)",  # Hebrew: member, insured, policy number
    r"ת(?:\.|׳|')\s*ז(?:\.|׳|')?",  # Hebrew: identity card number
    r"شماره\s+بیمه",  # Persian: insurance number
    r"کد\s+ملی",  # Persian: national id
    r"polisnummer",
    r"verzekeringsnummer",
    r"versicherungsnummer",
    r"versichertennummer",
    r"krankenkassennummer",
    r"försäkringsnummer",
    r"medlemsnummer",
    r"tessera\s+sanitaria",
    r"(?:numero\s+(?:di\s+)?)?polizza",
    r"numero\s+(?:di\s+)?tessera",
    r"vers\.?\s*-?\s*nr\.?",
    r"versicherungs-?\s*nr\.?",
    r"codice\s+fiscale",
    r"carteirinha(?:\s+do\s+plano)?",
    r"n[úu]mero\s+d[aoe]\s+(?:carteirinha|plano|ap[óo]lice|benefici[áa]rio|miembro|socio|asegurado)",
    r"n[úu]mero\s+de\s+(?:afiliad[oa]|seguro|la\s+p[óo]liza|la\s+tarjeta)",
    r"afiliad[oa]",
    r"tarjeta\s+sanitaria",
    r"cart[ãa]o\s+(?:do\s+)?sus",
    r"carte\s+vitale",
    r"num[ée]ro\s+(?:d['’]|de\s+)(?:assur[ée]|s[ée]curit[ée]\s+sociale|police)",
    r"numer\s+(?:polisy|ubezpieczenia)",
    r"pesel",
    r"poli[çc]e\s+(?:numaras[ıi]|no)",
    r"sigorta\s+(?:numaras[ıi]|no)",
    r"nomor\s+(?:peserta|polis|kartu\s+bpjs|bpjs|asuransi)",
    r"kartu\s+peserta",
    r"numero\s+ng\s+(?:miyembro|philhealth)",
    r"номер\s+полиса",
    r"полис(?:\s+омс)?",
    r"снилс",
    r"رقم\s+(?:بوليصة|وثيقة)(?:\s+التأمين)?",
    r"رقم\s+(?:بطاقة\s+)?التأمين",
    r"बीमा\s+(?:पॉलिसी\s+)?(?:नंबर|संख्या)",
    r"पॉलिसी\s+(?:नंबर|संख्या)",
    r"医保卡?号",
    r"保单号",
    r"保[险險]卡?号",
    r"保険証番号",
    r"被保険者番号",
    r"記号番号",
    r"보험\s*(?:증\s*)?번호",
    r"가입자\s*번호",
    r"증권\s*번호",
)

#: account numbers, customer and guarantor numbers (Safe Harbor #10)
ACCOUNT_LABELS = (
    r"konto-?nr\.?",
    r"מספר\s+חשבון",  # Hebrew
    r"شماره\s+حساب",  # Persian
    r"เลขที่บัญชี",  # Thai
    r"rekeningnummer",
    r"klantnummer",
    r"kontonummer",
    r"kundnummer",
    r"numero\s+(?:di\s+)?conto",
    r"conto\s+paziente",
    r"(?:numero|codice)\s+cliente",
    r"n[úu]mero\s+de\s+cuenta",
    r"cuenta\s+(?:del\s+)?paciente",
    r"n[úu]mero\s+da\s+conta",
    r"num[ée]ro\s+de\s+(?:compte|client)",
    r"compte\s+patient",
    r"numer\s+(?:konta|klienta|rachunku)",
    r"hesap\s+(?:numaras[ıi]|no)",
    r"m[üu][şs]teri\s+(?:numaras[ıi]|no)",
    r"nomor\s+(?:rekening|pelanggan|akun)",
    r"numero\s+ng\s+account",
    r"номер\s+(?:сч[её]та|договора|клиента)",
    r"лицевой\s+сч[её]т",
    r"сч[её]т(?:у|а|ом)?",
    r"compte",
    r"conto",
    r"رقم\s+الحساب",
    r"खाता\s+(?:संख्या|नंबर)",
    r"(?:बैंक\s+)?खात[ाे]",
    r"账号",
    r"帳號",
    r"(?:就诊)?账户(?:号码?)?",
    r"帳戶",
    r"口座番号",
    r"顧客番号",
    r"계좌\s*번호",
    r"고객\s*번호",
)

#: date of birth
DOB_LABELS = (
    r"geburtsdatum",
    r"date\s+de\s+naissance",
    r"data\s+de\s+nascimento",
    r"geboortedatum",
    r"geb\.?\s*datum",
    r"geb\.(?:\s+am)?",
    r"f[öo]dd",
    r"f[öo]delsedatum",
    r"data\s+di\s+nascita",
    r"nat[oa](?:/[ao])?\s+(?:il|a)",
    r"data\s+ur(?:odzenia|\.)",
    r"urodzon[ya]",
    r"datum\s+narozen[íi]",
    r"data\s+na[șs]terii",
    r"do[ğg]um\s+tarih\w*",  # Turkish suffixes: "Doğum tarihiniz"
    r"tanggal\s+lahir",
    r"tarikh\s+lahir",
    r"petsa\s+ng\s+kapanganakan",
    r"kaarawan",
    r"nasci\s+em",
    r"nascid[oa]\s+em",
    r"fecha\s+de\s+nac(?:imiento)?",
    r"data\s+(?:de\s+)?nasc\.",  # Portuguese, abbreviated
    r"nac(?:i[óo]|[íi])(?:\s+el)?",  # "nació el", "nací el"
    r"nar(?:\.|ozen[áa]?)",  # Czech
    r"f\.\s*nac\.?",
    r"дата\s+рождения",
    r"дата\s+народження",
    r"วันเกิด",  # Thai
    r"วัน\s*เดือน\s*ปี\s*เกิด",
    r"родил(?:ся|ась)",
    r"ημερομην[ίι]α\s+γ[έε]ννησης",
    r"و?تاريخ\s+(?:الميلاد|الولادة|ميلاد[يه]?)",  # also "my date of birth", after "and" (و)
    r"تار[يی]خ\s+تولد",  # Persian
    r"תאריך\s+לידה",  # Hebrew
    r"ת(?:\.|׳|')\s*לידה",
    r"मेरी\s+जन्म\s+तिथि",
    r"जन्म\s+(?:तिथि|तारीख|दिनांक)",
    r"出生日期",
    r"出生年月日",
    r"生年月日",
    r"생년월일",
    r"ngày\s+sinh",
    r"sinh\s+ngày",
)

#: zip / postal codes
ZIP_LABELS = (
    r"מיקוד",  # Hebrew
    r"کد\s+پستی",  # Persian
    r"postcode",
    r"postnummer",
    r"postleitzahl",
    r"c\.a\.p\.",
    r"code\s+postal",
    r"c[óo]d(?:igo)?\.?\s+postal",
    r"cep",
    r"kod\s+pocztowy",
    r"posta\s+kodu",
    r"kode\s+pos",
    r"poskod",
    r"почтовый\s+индекс",
    r"الرمز\s+البريدي",
    r"पिन\s*कोड",
    r"邮编",
    r"郵便番号",
    r"〒",
    r"우편\s*번호",
)


def _unspaced(label: str) -> bool:
    # CJK, kana, Hangul, and Thai / Lao / Myanmar / Khmer: written without word breaks
    return any(ord(c) >= 0x3000 or 0x0E00 <= ord(c) <= 0x0EFF or 0x1000 <= ord(c) <= 0x109F
               or 0x1780 <= ord(c) <= 0x17FF for c in label)  # fmt: skip


def label_pattern(labels: tuple[str, ...]) -> str:
    """One regex alternative for `labels`: case-insensitive, whole words where the script has words."""
    spaced = [lab for lab in labels if not _unspaced(lab)]
    unspaced = [lab for lab in labels if _unspaced(lab)]
    parts = []
    if spaced:
        parts.append(rf"(?<![^\W\d_])(?:{'|'.join(spaced)})(?![^\W\d_])")
    if unspaced:
        parts.append(rf"(?:{'|'.join(unspaced)})")
    return rf"(?i:{'|'.join(parts)})"


#: keys of a person's name parts in other languages, as `keyed` writes them (lower case, "_" for spaces);
#: not the words for "name" alone ("nom", "nombre", "nome"), which name products and places as often
NAME_KEYS = (
    "prénom", "prenom", "nom_de_famille", "nom_et_prénom", "apellido", "apellidos", "primer_apellido",
    "nombre_completo", "nombre_y_apellidos", "cognome", "nome_e_cognome", "sobrenome", "nome_completo",
    "vorname", "nachname", "familienname", "voornaam", "achternaam", "imię", "nazwisko", "imię_i_nazwisko",
    "soyadı", "soyad", "ad_soyad", "фамилия", "отчество", "фио", "прізвище", "по_батькові", "επώνυμο",
    "ονοματεπώνυμο", "שם_משפחה", "שם_פרטי", "اسم_العائلة", "الاسم_الكامل", "姓名", "氏名", "성명", "họ_tên",
    "họ_và_tên", "ชื่อ_นามสกุล", "นามสกุล", "उपनाम",
)  # fmt: skip


#: kind -> one regex alternative of all its labels ("dob", "mrn", "member": member and account ids, "zip")
LABEL_PATTERNS = {
    "dob": label_pattern(DOB_LABELS),
    "mrn": label_pattern(MRN_LABELS),
    "member": label_pattern(MEMBER_LABELS + ACCOUNT_LABELS),
    "zip": label_pattern(ZIP_LABELS),
}


# A word of 3+ letters with an OCR digit inside ("Acc0unt", "Statem3nt", "Ba1ance"), and the letters it stands for
_OCR_WORD = re.compile(
    r"(?<![\w-])(?=(?:[A-Za-z]*[0135]){1,2}[A-Za-z]*(?![\w-]))(?=(?:[0135]*[A-Za-z]){3})[A-Za-z]+[0135][A-Za-z0135]*[A-Za-z](?![\w-])"
)
_OCR_LETTERS = str.maketrans("0135", "oles")
_OCR_CAPITALS = str.maketrans("0135", "OIES")  # "B1RTH", "PAT1ENT": a capital I, not an l
_OCR_LN = re.compile(r"(?<![\w-])ln(?=[a-z]*\b)")  # "lns. ID", "lnsurance": no word starts with "ln"


def ocr_fold(text: str) -> str:
    """`text` with OCR confusions inside words undone (same length, so spans found in it hold in `text`):
    digits read as the letters they stand for (capitals in a word of capitals), a word-initial "ln" as "In".

    Example:
        >>> ocr_fold("Acc0unt #: 443552941, lns. ID: W123")
        'Account #: 443552941, Ins. ID: W123'
    """
    if not any(c in text for c in "0135"):
        return text
    return _OCR_LN.sub("In", _OCR_WORD.sub(_ocr_letters, text))


def _ocr_letters(m: re.Match) -> str:
    word = m.group(0)
    return word.translate(_OCR_CAPITALS if word.isupper() else _OCR_LETTERS)
