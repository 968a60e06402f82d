"""Make the evaluation fixtures in tests/data/eval/: the held-out ho2- questions of tests/qa_set.json (recordings
and PDFs) and, with --part dev, the development dv- questions (recordings named dev_, made for tuning how
recordings are cut into search windows, issue 22; the held-out files and questions are left as they are).

Recordings: several topics each, spoken by espeak-ng sentence by sentence with short pauses, encoded to MP3 (PyAV).
PDFs: multi-page reports with an introduction page, results/cost tables and a conclusions page, written by fpdf2
as real text. Then, with --verify, each answer is checked the way the pipeline sees it: recordings transcribed
by the packaged Whisper model (ingestflow.audio.whisper.transcribe), PDFs parsed and chunked
(ingestflow.parsing.conversion.convert, ingestflow.parsing.chunking.chunk); --write-qa puts the questions, with
the seconds of the answering sentence as transcribed, into tests/qa_set.json.

Regenerate (espeak-ng from Debian, fpdf2 kept outside the project venv):

    apt-get install -y espeak-ng
    python3 -m pip install --target /tmp/pdflib fpdf2
    PYTHONPATH=/tmp/pdflib .venv/bin/python scripts/make_eval_fixtures.py --verify --write-qa
    .venv/bin/python scripts/make_eval_fixtures.py --part dev --verify --write-qa

The ho2- questions were written before any ranking was tuned on them; do not rephrase them to suit the ranking.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "eval"
QA_SET = ROOT / "tests" / "qa_set.json"
RATE = 22050  # espeak-ng's output rate
PAUSE_SENTENCE = 0.45
PAUSE_SPEAKER = 0.7
PAUSE_TOPIC = 1.3

# name -> {"voices": {speaker: espeak voice}, "topics": [[(speaker, sentence), ...], ...]}
RECORDINGS: dict[str, dict[str, Any]] = {
    "call_centre_boiler.mp3": {
        "voices": {"A": "en-us", "C": "en-us"},
        "topics": [
            [
                ("A", "Good morning, you are through to Northside Energy, my name is Sarah. How can I help you today?"),
                ("C", "Hello Sarah, my name is Margaret Hill and I live at twelve Church Street."),
                ("C", "My boiler stopped working on Sunday night and we have no hot water at all."),
                ("C", "The pressure dial shows zero and a red light keeps flashing."),
                ("A", "I am sorry to hear that. Please switch the boiler off at the wall until it has been checked."),
            ],
            [
                ("C", "I also have a question about my last bill."),
                ("C", "My gas bill for March was ninety eight pounds, which is far more than usual."),
                ("A", "Let me look. I can see that you were charged twice for the same gas reading."),
                ("A", "We will refund sixty five pounds to your bank account within five working days."),
            ],
            [
                ("A", "Now let me book a visit for the boiler."),
                ("A", "Our engineer, David Clark, can come on Thursday at nine o'clock in the morning."),
                ("A", "Please make sure that someone is at home to let him in."),
                ("A", "The call out fee is thirty pounds, but it is free for customers on our cover plan."),
            ],
            [
                ("C", "One more thing. I would like to pay by direct debit from next month."),
                ("A", "That is fine. The payment will be taken on the first day of each month."),
                ("A", "Your reference number for today is three one eight six. Thank you for calling."),
            ],
        ],
    },
    "home_visit_note.mp3": {
        "voices": {"S": "en-gb"},
        "topics": [
            [
                ("S", "This is a home visit note by Linda Evans, social worker, recorded on the ninth of October."),
                ("S", "I visited Mister George Palmer, who is eighty two and lives alone at three Mill Lane."),
                ("S", "The house was warm and clean, and there was food in the fridge."),
            ],
            [
                ("S", "On health, George takes his blood pressure tablets every morning at eight."),
                ("S", "He told me he fell in the kitchen last Tuesday, but he did not go to hospital."),
                ("S", "He needs a grab rail by the back door and a second rail in the bathroom."),
                ("S", "The occupational therapist, Rachel Green, will visit on the fifteenth of November."),
            ],
            [
                ("S", "About money, his pension is two hundred pounds a week."),
                ("S", "He owes three hundred pounds in council tax from last year."),
                ("S", "I will help him apply for a discount, and he agreed to pay twenty pounds a month."),
            ],
            [
                ("S", "On family, his daughter Emma phones him every Sunday evening."),
                ("S", "His son lives in Canada and visits once a year, in the summer."),
                ("S", "My next visit is planned for the twenty third of October, at two in the afternoon."),
            ],
        ],
    },
    "team_meeting.mp3": {
        "voices": {"K": "en-us", "P": "en-gb"},
        "topics": [
            [
                ("K", "Good afternoon everyone, this is Karen, and this is our team meeting for the first of May."),
                ("K", "First item, the new website."),
                ("P", "Thanks Karen. The launch of the new website has moved to the fourteenth of June."),
                ("P", "The testing took longer than we planned, and we still have twenty pages to check."),
            ],
            [
                ("K", "Second item, the budget."),
                ("K", "The marketing team may spend twelve thousand pounds this quarter, and no more."),
                ("P", "Does that include the printed leaflets?"),
                ("K", "Yes, the leaflets cost two thousand pounds, and that comes out of the same money."),
            ],
            [
                ("K", "Third item, new staff."),
                ("K", "Sophie Turner joins us as a designer on Monday the second of June."),
                ("K", "Paul will show her around and give her a laptop on her first day."),
            ],
            [
                ("K", "Fourth item, the office move."),
                ("P", "The new office is at twenty five King Street, on the second floor."),
                ("P", "The move happens on Friday the thirtieth of May, so please pack your desks the day before."),
            ],
            [
                ("K", "Last item, the summer party is on Friday at six in the evening at the Red Lion."),
                ("K", "Thank you all, see you next week."),
            ],
        ],
    },
    "voice_memo_reminders.mp3": {
        "voices": {"V": "en-us"},
        "topics": [
            [
                ("V", "Note to self, a few things for next week."),
                ("V", "The dentist appointment with Doctor Patel is on Tuesday at half past two."),
                ("V", "Remember to bring the form for the new filling."),
            ],
            [
                ("V", "Pay the electricity bill of fifty five pounds before Friday."),
                ("V", "The water bill can wait until the end of the month."),
            ],
            [
                ("V", "Buy a birthday present for my nephew Jack."),
                ("V", "His birthday is on August the twelfth, and he wants a red bike helmet."),
            ],
            [
                ("V", "The car goes in for a service at Smith's Garage on Wednesday morning."),
                ("V", "They said the service will cost four hundred pounds, with new brake pads."),
                ("V", "Ask Tom for a lift to work that day."),
            ],
            [
                ("V", "Finally, call Mum on Saturday about the holiday in Spain."),
            ],
        ],
    },
}

# Each answer: the recording, and phrases (any one) whose words must be in the transcript, in order; the
# question's seconds are those of the transcribed sentence holding the phrase.
AUDIO_QUESTIONS: list[dict[str, Any]] = [
    {"id": "ho2-boiler-engineer", "question": "Who is the engineer coming to fix Margaret's boiler?",
     "document": "call_centre_boiler.mp3", "expect": ["David Clark"]},
    {"id": "ho2-boiler-visit-time", "question": "When will someone come round to look at the boiler?",
     "document": "call_centre_boiler.mp3", "expect": ["Thursday at nine", "Thursday at 9", "Thursday at 9 o'clock"]},
    {"id": "ho2-double-charge-refund", "question": "How much money will the energy company give back?",
     "document": "call_centre_boiler.mp3", "expect": ["sixty five pounds", "65 pounds", "65"]},
    {"id": "ho2-march-bill", "question": "How big was the March bill?",
     "document": "call_centre_boiler.mp3",
     "expect": ["ninety eight pounds", "98 pounds", "98"]},
    {"id": "ho2-caller-address", "question": "What is the address of the customer with the broken boiler?",
     "document": "call_centre_boiler.mp3", "expect": ["twelve Church Street", "12 Church Street"]},
    {"id": "ho2-callout-fee", "question": "What does an engineer visit cost without the cover plan?",
     "document": "call_centre_boiler.mp3", "expect": ["thirty pounds", "30 pounds", "30"]},
    {"id": "ho2-palmer-fall", "question": "Where and when did George Palmer have a fall?",
     "document": "home_visit_note.mp3", "expect": ["kitchen last Tuesday"]},
    {"id": "ho2-occupational-therapist", "question": "Who is the occupational therapist and when is she coming?",
     "document": "home_visit_note.mp3", "expect": ["Rachel Green"]},
    {"id": "ho2-council-tax-debt", "question": "How much does the client owe the council?",
     "document": "home_visit_note.mp3", "expect": ["three hundred pounds", "300 pounds", "300"]},
    {"id": "ho2-weekly-pension", "question": "What is George's weekly income from his pension?",
     "document": "home_visit_note.mp3", "expect": ["two hundred pounds", "200 pounds", "200"]},
    {"id": "ho2-next-home-visit", "question": "When will the social worker see George again?",
     "document": "home_visit_note.mp3", "expect": ["twenty third of October", "23rd of October", "23 October"]},
    {"id": "ho2-daughter-calls", "question": "How often does Emma get in touch with her father?",
     "document": "home_visit_note.mp3", "expect": ["every Sunday evening"]},
    {"id": "ho2-website-launch", "question": "When does the new website go live?",
     "document": "team_meeting.mp3", "expect": ["fourteenth of June", "14th of June", "June 14"]},
    {"id": "ho2-new-designer", "question": "Who is the new designer joining the team?",
     "document": "team_meeting.mp3", "expect": ["Sophie Turner"]},
    {"id": "ho2-marketing-budget", "question": "What is the marketing budget for the quarter?",
     "document": "team_meeting.mp3", "expect": ["twelve thousand pounds", "12,000 pounds", "12000 pounds", "12,000"]},
    {"id": "ho2-new-office", "question": "Where is the team's new office?",
     "document": "team_meeting.mp3", "expect": ["twenty five King Street", "25 King Street"]},
    {"id": "ho2-office-move-date", "question": "On what date do we move offices?",
     "document": "team_meeting.mp3", "expect": ["thirtieth of May", "30th of May"]},
    {"id": "ho2-summer-party", "question": "What time does the party start and where is it?",
     "document": "team_meeting.mp3", "expect": ["Red Lion"]},
    {"id": "ho2-dentist-time", "question": "What time is the appointment with Doctor Patel?",
     "document": "voice_memo_reminders.mp3", "expect": ["half past two", "2.30", "2:30"]},
    {"id": "ho2-electricity-bill", "question": "How much is owed for electricity?",
     "document": "voice_memo_reminders.mp3", "expect": ["fifty five pounds", "55 pounds", "55"]},
    {"id": "ho2-jack-birthday", "question": "When is my nephew's birthday?",
     "document": "voice_memo_reminders.mp3",
     "expect": ["August the twelfth", "August the 12th", "August 12th", "August 12"]},
    {"id": "ho2-car-service-cost", "question": "What will the garage charge for the car?",
     "document": "voice_memo_reminders.mp3",
     "expect": ["four hundred pounds", "400 pounds", "400"]},
]

# The DEVELOPMENT recordings (file names dev_, questions dv-, split "dev"): made for tuning how recordings are cut
# into search windows (issue 22), so, unlike the ho2- ones above, they may be tuned on. Written the same way: several
# topics each, facts said mid-way, words that recur across topics; wording kept to what Whisper tiny.en hears right
# (no "X hundred and Y", no digit-by-digit reference numbers, no "bill").
DEV_RECORDINGS: dict[str, dict[str, Any]] = {
    "dev_gp_surgery_call.mp3": {
        "voices": {"R": "en-gb", "P": "en-us"},
        "topics": [
            [
                ("R", "Good morning, Oakwood Medical Centre, Helen speaking. How can I help?"),
                ("P", "Hello Helen, this is Daniel Morris. I have a few things to ask, if that is all right."),
            ],
            [
                ("P", "First, I asked for my repeat prescription for my asthma inhaler on Monday."),
                ("R", "Let me check. Doctor Collins approved it this morning."),
                ("R", "It will be ready to collect from Green Cross Pharmacy after four o'clock tomorrow."),
                ("P", "Great, my old inhaler is almost empty."),
            ],
            [
                ("P", "Second, I had a blood test last week and nobody has called me about it."),
                ("R", "Your blood test came back normal, apart from a low iron level."),
                ("R", "The doctor would like to check your iron again in three months, so please book a new test "
                      "in June."),
            ],
            [
                ("P", "And can I book an appointment for my daughter Lucy? She has had a cough for two weeks."),
                ("R", "The first free appointment is on Wednesday at ten past eleven with our nurse, Amy Walker."),
                ("R", "Please bring Lucy's red book with you, and come ten minutes early."),
            ],
            [
                ("R", "One last thing. The flu vaccine clinic is on Saturday the eighth of November."),
                ("R", "You can book Lucy in for the nasal spray at the same time."),
                ("P", "Thank you Helen, that is very helpful. Goodbye."),
            ],
        ],
    },
    "dev_housing_repair_call.mp3": {
        "voices": {"O": "en-us", "T": "en-gb"},
        "topics": [
            [
                ("O", "Good morning, Riverside Housing repairs, my name is Mark."),
                ("T", "Hi Mark, my name is Grace Wilson. I rent the top floor flat at forty Park Road."),
            ],
            [
                ("T", "Water is coming through my bathroom ceiling, from the pipes in the loft."),
                ("O", "That is an emergency, so a plumber will come today."),
                ("O", "Our plumber, Tony Reed, will be with you between two and five this afternoon."),
                ("O", "Until then, please turn off the water at the main tap under the kitchen sink."),
            ],
            [
                ("T", "There is also black mould on the bedroom wall, and it keeps coming back."),
                ("O", "We will send a surveyor to look at the mould on the nineteenth of March."),
                ("O", "If the wall needs treatment, the work usually takes two weeks."),
            ],
            [
                ("T", "The water from the ceiling has ruined my bathroom carpet."),
                ("O", "You can claim up to fifty pounds for the carpet."),
                ("O", "Please send us the claim form with a photo of the damage."),
            ],
            [
                ("T", "Last thing, the lock on my front door is broken and it will not close."),
                ("O", "We will send someone to change the whole lock on Friday morning, and there is no charge "
                      "for that."),
                ("O", "Thank you for calling, and sorry about all the trouble."),
            ],
        ],
    },
    "dev_project_standup.mp3": {
        "voices": {"L": "en-gb", "S": "en-us", "A": "en-us"},
        "topics": [
            [
                ("L", "Morning everyone, this is the stand-up for the mobile app project, on the eleventh of March."),
                ("L", "Sam, would you like to go first?"),
            ],
            [
                ("S", "Sure. Yesterday I fixed the login bug on Android phones."),
                ("S", "Today I am building the payment screen, and it should be ready for testing on Thursday."),
            ],
            [
                ("A", "This is Anna. I finished the new search page, but the test server keeps crashing."),
                ("L", "Thanks Anna. Raj from the server team will look at it after lunch."),
            ],
            [
                ("L", "Next, the release. The new version goes to the app store on the twenty eighth of March."),
                ("L", "Our fifty test users will get it one week earlier."),
            ],
            [
                ("L", "On costs, the cloud servers cost us eight thousand pounds last month, up from five thousand."),
                ("L", "Please turn off the test servers every night."),
            ],
            [
                ("L", "Finally, the client demo for Parker Foods is on Friday at four o'clock."),
                ("L", "Anna will show the search page and Sam will show the payment screen. Thanks everyone."),
            ],
        ],
    },
}

DEV_AUDIO_QUESTIONS: list[dict[str, Any]] = [
    {"id": "dv-gp-inhaler-pickup", "question": "When can Daniel pick up his inhaler, and from where?",
     "document": "dev_gp_surgery_call.mp3", "expect": ["Green Cross Pharmacy", "Green Cross"]},
    {"id": "dv-gp-who-signed", "question": "Which doctor signed off the repeat prescription?",
     "document": "dev_gp_surgery_call.mp3", "expect": ["Doctor Collins", "Dr. Collins", "Dr Collins"]},
    {"id": "dv-gp-blood-result", "question": "What did Daniel's blood results show?",
     "document": "dev_gp_surgery_call.mp3", "expect": ["low iron level", "iron level"]},
    {"id": "dv-gp-retest", "question": "How long until the iron needs checking again?",
     "document": "dev_gp_surgery_call.mp3", "expect": ["three months", "3 months"]},
    {"id": "dv-gp-lucy-appointment", "question": "When is Lucy's appointment for her cough, and who will see her?",
     "document": "dev_gp_surgery_call.mp3", "expect": ["Amy Walker", "Wednesday at ten past eleven",
                                                        "Wednesday at 10 past 11"]},
    {"id": "dv-gp-flu-clinic", "question": "What date is the flu jab clinic?",
     "document": "dev_gp_surgery_call.mp3", "expect": ["eighth of November", "8th of November", "8 November"]},
    {"id": "dv-housing-address", "question": "Where does the tenant with the leak live?",
     "document": "dev_housing_repair_call.mp3", "expect": ["forty Park Road", "40 Park Road"]},
    {"id": "dv-housing-plumber", "question": "Who is coming to fix the leak, and what time?",
     "document": "dev_housing_repair_call.mp3", "expect": ["Tony Reed"]},
    {"id": "dv-housing-stop-tap", "question": "Where do I shut off the water supply?",
     "document": "dev_housing_repair_call.mp3", "expect": ["kitchen sink"]},
    {"id": "dv-housing-damp-survey", "question": "When will someone check the mould on the wall?",
     "document": "dev_housing_repair_call.mp3",
     "expect": ["nineteenth of March", "19th of March", "19 March", "March 19"]},
    {"id": "dv-housing-carpet-claim", "question": "How much can Grace get back for the ruined carpet?",
     "document": "dev_housing_repair_call.mp3", "expect": ["fifty pounds", "50 pounds", "50"]},
    {"id": "dv-housing-lock", "question": "When will the broken door lock be replaced?",
     "document": "dev_housing_repair_call.mp3", "expect": ["Friday morning"]},
    {"id": "dv-standup-login-bug", "question": "What problem did Sam solve on Android?",
     "document": "dev_project_standup.mp3", "expect": ["login bug"]},
    {"id": "dv-standup-payment-ready", "question": "When is the payment screen due to be tried out?",
     "document": "dev_project_standup.mp3", "expect": ["testing on Thursday"]},
    {"id": "dv-standup-server-help", "question": "Who will help with the test server problem?",
     "document": "dev_project_standup.mp3", "expect": ["Raj"]},
    {"id": "dv-standup-release-date", "question": "When does the new version of the app come out?",
     "document": "dev_project_standup.mp3",
     "expect": ["twenty eighth of March", "28th of March", "28 March", "March 28"]},
    {"id": "dv-standup-cloud-costs", "question": "What was last month's spend on hosting?",
     "document": "dev_project_standup.mp3",
     "expect": ["eight thousand pounds", "8,000 pounds", "8000 pounds", "8,000", "8000"]},
    {"id": "dv-standup-client-demo", "question": "What time are we presenting to Parker Foods?",
     "document": "dev_project_standup.mp3", "expect": ["four o'clock", "4 o'clock", "Friday at four", "Friday at 4"]},
]

# The PDFs: each page a list of blocks, ("h1"|"h2"|"p", text) or ("table", [header, row, ...]).
PDFS: dict[str, list[list[tuple[str, Any]]]] = {
    "heat_pump_trial_report.pdf": [
        [
            ("h1", "Heat Pump Field Trial 2023: Final Report"),
            ("p", "Prepared by the Greenfield Housing Association energy team, March 2024."),
            ("h2", "1. Introduction"),
            ("p", "This report describes a one-year field trial of air source heat pumps in eight homes owned by "
                  "the association. The trial set out to measure how efficient the heat pumps are in real homes, "
                  "how much energy and money tenants save compared with their old gas boilers, and what the "
                  "installation really costs once all the extra work is counted."),
            ("p", "Each home was fitted with a heat meter and an electricity meter, and tenants kept a short diary "
                  "of comfort and problems. The results for every site are given in Section 2, the costs of the "
                  "trial in Section 3, and our conclusions and recommendations in Section 4."),
            ("p", "We thank the tenants for letting us into their homes, and the installers for their patience "
                  "through a cold winter."),
        ],
        [
            ("h2", "2. Results by site"),
            ("p", "Table 1 gives, for each trial home, the heat pump fitted, the seasonal coefficient of performance "
                  "(SCOP) measured over the year, the electricity used for heating and the yearly saving on the "
                  "tenant's bills against the old gas boiler."),
            ("table", [
                ["Site", "Town", "Heat pump", "SCOP", "Electricity (kWh)", "Yearly saving"],
                ["H1", "Bradford", "Vaillant aroTHERM 7kW", "3.12", "3,410", "£215"],
                ["H2", "Halifax", "Mitsubishi Ecodan 8.5kW", "2.87", "4,050", "£140"],
                ["H3", "Huddersfield", "Daikin Altherma 6kW", "3.46", "2,780", "£305"],
                ["H4", "Keighley", "Samsung Gen6 8kW", "2.54", "4,620", "£65"],
                ["H5", "Wakefield", "Vaillant aroTHERM 5kW", "3.71", "2,230", "£360"],
                ["H6", "Dewsbury", "Grant Aerona 10kW", "2.95", "5,140", "£120"],
                ["H7", "Skipton", "Mitsubishi Ecodan 6kW", "3.28", "3,020", "£250"],
                ["H8", "Otley", "Daikin Altherma 8kW", "3.05", "3,760", "£190"],
            ]),
            ("p", "The mean SCOP over all eight sites was 3.12. Homes with larger radiators did best."),
        ],
        [
            ("h2", "3. Costs of the trial"),
            ("p", "Table 2 gives what the trial cost, including the work that was not planned at the start."),
            ("table", [
                ["Item", "Quantity", "Unit cost", "Total"],
                ["Heat pump units", "8", "£6,450", "£51,600"],
                ["Hot water cylinders", "8", "£1,150", "£9,200"],
                ["Radiator upgrades", "23", "£390", "£8,970"],
                ["Loft and wall insulation", "5", "£1,780", "£8,900"],
                ["Electrical upgrades", "3", "£920", "£2,760"],
                ["Heat and power meters", "16", "£185", "£2,960"],
                ["Scaffolding hire", "6", "£540", "£3,240"],
                ["Project management", "1", "£7,500", "£7,500"],
            ]),
            ("p", "The total cost of the trial was £95,130, against a budget of £88,000."),
        ],
        [
            ("h2", "4. Conclusions and recommendations"),
            ("p", "Heat pumps worked well in most of the trial homes and every tenant saved money on heating, "
                  "although the savings varied a great deal from site to site. The efficiency depended more on "
                  "the radiators and insulation of the home than on the brand of heat pump."),
            ("p", "The costs were higher than planned, mainly because of radiator and insulation work that was "
                  "found only during the surveys. Future projects should survey every home in detail before "
                  "ordering equipment, and should budget for extra work in older houses."),
            ("p", "We recommend that the association fits heat pumps in a further forty homes next year, starting "
                  "with the best insulated ones, and keeps measuring performance in the trial homes."),
        ],
    ],
    "library_programme_report.pdf": [
        [
            ("h1", "Summer Reading Programme 2024"),
            ("p", "Annual report of the Riverside District Libraries to the council's culture committee."),
            ("h2", "Introduction"),
            ("p", "Every summer the district libraries run a reading programme for children aged five to twelve, "
                  "with weekly events, a reading challenge and prizes. This year the programme also offered "
                  "sessions for teenagers and a book club for adults who are learning English."),
            ("p", "This report sets out the schedule of events, the number of children who took part at each "
                  "branch, what the programme cost against its budget, and what we learned. Attendance, "
                  "spending and results are discussed in the sections that follow."),
        ],
        [
            ("h2", "Schedule of events"),
            ("table", [
                ["Event", "Date", "Branch", "Led by", "Attendance"],
                ["Opening party", "20 July", "Central Library", "Anna Brooks", "142"],
                ["Storytelling with puppets", "27 July", "Eastgate", "Mark Ellis", "58"],
                ["Comic drawing workshop", "3 August", "Northfield", "Priya Shah", "36"],
                ["Science of slime", "10 August", "Central Library", "Ben Carter", "74"],
                ["Author visit: Jane Holloway", "17 August", "Westbrook", "Anna Brooks", "91"],
                ["Teen poetry slam", "24 August", "Eastgate", "Leo Grant", "27"],
                ["Medal ceremony", "31 August", "Central Library", "Anna Brooks", "165"],
            ]),
        ],
        [
            ("h2", "Results by branch"),
            ("p", "Children joined the reading challenge at any branch and read at least six books to finish it."),
            ("table", [
                ["Branch", "Children signed up", "Finished challenge", "Books borrowed", "Change on 2023"],
                ["Central Library", "612", "388", "7,940", "+12%"],
                ["Eastgate", "245", "131", "2,860", "-4%"],
                ["Northfield", "198", "117", "2,310", "+9%"],
                ["Westbrook", "321", "204", "3,975", "+18%"],
                ["Hillside", "87", "39", "840", "-21%"],
                ["Mobile library", "64", "41", "690", "+35%"],
            ]),
            ("h2", "Budget"),
            ("table", [
                ["Budget line", "Budgeted", "Spent"],
                ["Prizes and medals", "£3,200", "£3,480"],
                ["Visiting authors", "£1,500", "£1,250"],
                ["Craft materials", "£900", "£1,065"],
                ["Printing and posters", "£750", "£610"],
                ["Staff overtime", "£2,400", "£2,930"],
                ["Teen and adult sessions", "£1,000", "£820"],
            ]),
        ],
        [
            ("h2", "Conclusions"),
            ("p", "The programme reached more children than in any earlier year, and most branches lent more "
                  "books than in 2023. Attendance at events was strong at the larger branches, while the smaller "
                  "branches struggled to keep children reading through August."),
            ("p", "Spending was close to the budget overall, but prizes and staff time cost more than planned. "
                  "Next year we will order medals earlier, share events between nearby branches, and visit "
                  "schools in June to sign children up before the holidays begin."),
        ],
    ],
}

PDF_QUESTIONS: list[dict[str, Any]] = [
    {"id": "ho2-scop-wakefield", "question": "How efficient was the heat pump in the Wakefield home?",
     "document": "heat_pump_trial_report.pdf", "page": 2, "contains": "3.71"},
    {"id": "ho2-keighley-saving", "question": "How much did the tenant in Keighley save in a year?",
     "document": "heat_pump_trial_report.pdf", "page": 2, "contains": "£65"},
    {"id": "ho2-dewsbury-pump", "question": "Which heat pump was fitted at the Dewsbury site?",
     "document": "heat_pump_trial_report.pdf", "page": 2, "contains": "Grant Aerona"},
    {"id": "ho2-halifax-electricity", "question": "How much electricity did the Halifax home use for heating?",
     "document": "heat_pump_trial_report.pdf", "page": 2, "contains": "4,050"},
    {"id": "ho2-best-saving-site", "question": "Huddersfield heat pump yearly saving",
     "document": "heat_pump_trial_report.pdf", "page": 2, "contains": "£305"},
    {"id": "ho2-otley-scop", "question": "What SCOP did the Daikin unit in Otley reach?",
     "document": "heat_pump_trial_report.pdf", "page": 2, "contains": "3.05"},
    {"id": "ho2-unit-price", "question": "What did each heat pump unit cost?",
     "document": "heat_pump_trial_report.pdf", "page": 3, "contains": "£6,450"},
    {"id": "ho2-radiator-cost", "question": "How many radiators were upgraded and what did it cost in total?",
     "document": "heat_pump_trial_report.pdf", "page": 3, "contains": "£8,970"},
    {"id": "ho2-scaffolding", "question": "scaffolding hire cost",
     "document": "heat_pump_trial_report.pdf", "page": 3, "contains": "£3,240"},
    {"id": "ho2-insulation-homes", "question": "In how many homes was insulation added, and at what cost?",
     "document": "heat_pump_trial_report.pdf", "page": 3, "contains": "£8,900"},
    {"id": "ho2-project-management", "question": "How much went on managing the project?",
     "document": "heat_pump_trial_report.pdf", "page": 3, "contains": "£7,500"},
    {"id": "ho2-author-visit", "question": "Which author came to the Westbrook branch, and when?",
     "document": "library_programme_report.pdf", "page": 2, "contains": "Jane Holloway"},
    {"id": "ho2-slime-leader", "question": "Who ran the slime science session?",
     "document": "library_programme_report.pdf", "page": 2, "contains": "Ben Carter"},
    {"id": "ho2-poetry-slam", "question": "How many teenagers came to the poetry slam?",
     "document": "library_programme_report.pdf", "page": 2, "contains": "Teen poetry slam"},
    {"id": "ho2-comic-workshop-date", "question": "When was the comic drawing workshop at Northfield?",
     "document": "library_programme_report.pdf", "page": 2, "contains": "3 August"},
    {"id": "ho2-hillside-drop", "question": "How did the Hillside branch do compared with last year?",
     "document": "library_programme_report.pdf", "page": 3, "contains": "-21%"},
    {"id": "ho2-westbrook-finished", "question": "How many children finished the reading challenge at Westbrook?",
     "document": "library_programme_report.pdf", "page": 3, "contains": "204"},
    {"id": "ho2-central-books", "question": "How many books were borrowed from the Central Library?",
     "document": "library_programme_report.pdf", "page": 3, "contains": "7,940"},
    {"id": "ho2-prizes-overspend", "question": "What was actually spent on prizes and medals?",
     "document": "library_programme_report.pdf", "page": 3, "contains": "£3,480"},
    {"id": "ho2-author-budget", "question": "What was budgeted for visiting authors?",
     "document": "library_programme_report.pdf", "page": 3, "contains": "£1,500"},
    {"id": "ho2-staff-overtime", "question": "staff overtime spent",
     "document": "library_programme_report.pdf", "page": 3, "contains": "£2,930"},
]


# --- recordings -----------------------------------------------------------------------------------------------


def _speak(text: str, voice: str, workdir: Path, speed: int = 150) -> bytes:
    out = workdir / "s.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True)
    with wave.open(str(out)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes())


def _silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(RATE * seconds)


def synthesize(name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Write the recording; return its sentences with the seconds they were placed at."""
    pcm = bytearray(_silence(0.6))
    placed: list[dict[str, Any]] = []
    last_speaker = None
    with tempfile.TemporaryDirectory() as tmp:
        for t, topic in enumerate(spec["topics"]):
            if t:
                pcm += _silence(PAUSE_TOPIC)
            for s, (speaker, sentence) in enumerate(topic):
                if s:
                    pcm += _silence(PAUSE_SPEAKER if speaker != last_speaker else PAUSE_SENTENCE)
                start = len(pcm) / 2 / RATE
                pcm += _speak(sentence, spec["voices"][speaker], Path(tmp), spec.get("speed", 150))
                placed.append({"topic": t, "speaker": speaker, "text": sentence,
                               "seconds": [round(start, 2), round(len(pcm) / 2 / RATE, 2)]})
                last_speaker = speaker
    pcm += _silence(0.8)
    _encode_mp3(bytes(pcm), OUT / name)
    return placed


def _encode_mp3(pcm: bytes, path: Path) -> None:
    import av
    import numpy as np

    samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=RATE)
        stream.bit_rate = 32000
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _norm(text: str) -> str:
    """Lower case, no thousands commas or pound signs, other punctuation a space, spaces collapsed."""
    text = re.sub(r"(?<=\d),(?=\d)", "", text.lower()).replace("£", "")
    return " ".join(re.sub(r"[^a-z0-9%']+", " ", text).split())


_NOT_SENTENCE_END = {"dr.", "mr.", "mrs.", "ms.", "st."}


def _ends_sentence(word: str) -> bool:
    w = word.strip()
    return w.endswith((".", "?", "!")) and w.lower() not in _NOT_SENTENCE_END


def answer_seconds(transcript: Any, phrases: list[str]) -> tuple[list[float], str] | None:
    """The seconds of the transcribed sentence holding the first phrase found, and that sentence's text."""
    words = [w for seg in transcript.segments for w in seg.get("words", [])]
    # The transcript normalised character by character, each character knowing its word (numbers such as
    # "12,000" can come as two words).
    chars: list[str] = []
    owner: list[int] = []
    for i, w in enumerate(words):
        for c in w["word"]:
            chars.append(c)
            owner.append(i)
    raw = "".join(chars).lower()
    kept: list[str] = []
    kept_owner: list[int] = []
    for j, c in enumerate(raw):
        if c == "£" or (c == "," and 0 < j < len(raw) - 1 and raw[j - 1].isdigit() and raw[j + 1].isdigit()):
            continue
        c = c if (c.isalnum() or c in "%'") else " "
        if c == " " and (not kept or kept[-1] == " "):
            continue
        kept.append(c)
        kept_owner.append(owner[j])
    text = "".join(kept)
    for phrase in phrases:
        m = re.search(r"(?<![a-z0-9])" + re.escape(_norm(phrase)) + r"(?![a-z0-9])", text)
        if not m:
            continue
        first, last = kept_owner[m.start()], kept_owner[m.end() - 1]
        while first > 0 and not _ends_sentence(words[first - 1]["word"]):
            first -= 1
        while last < len(words) - 1 and not _ends_sentence(words[last]["word"]):
            last += 1
        sentence = "".join(w["word"] for w in words[first:last + 1]).strip()
        return [round(words[first]["start"], 2), round(words[last]["end"], 2)], sentence
    return None


# --- PDFs -----------------------------------------------------------------------------------------------------


def write_pdf(name: str, pages: list[list[tuple[str, Any]]]) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(__import__("datetime").datetime(2024, 3, 1, tzinfo=__import__("datetime").timezone.utc))
    pdf.set_margins(20, 20, 20)
    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    bold = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    if Path(font).exists() and Path(bold).exists():
        pdf.add_font("Body", "", font)
        pdf.add_font("Body", "B", bold)
        family = "Body"
    else:  # the core font has no £ outside latin-1, which it does have
        family = "Helvetica"
    for page in pages:
        pdf.add_page()
        for kind, content in page:
            if kind == "h1":
                pdf.set_font(family, "B", 20)
                pdf.multi_cell(0, 10, content, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
            elif kind == "h2":
                pdf.set_font(family, "B", 14)
                pdf.ln(3)
                pdf.multi_cell(0, 8, content, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
            elif kind == "p":
                pdf.set_font(family, "", 11)
                pdf.multi_cell(0, 6, content, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
            elif kind == "table":
                pdf.set_font(family, "", 9)
                pdf.ln(2)
                # Columns as wide as their longest cell, so that no cell wraps onto a second line.
                widths = [max(len(row[i]) for row in content) + 3 for i in range(len(content[0]))]
                with pdf.table(first_row_as_headings=True, line_height=7, text_align="LEFT",
                               col_widths=widths) as table:
                    for row in content:
                        cells = table.row()
                        for cell in row:
                            cells.cell(cell)
                pdf.ln(4)
    pdf.output(str(OUT / name))


def check_pdf(name: str, questions: list[dict[str, Any]]) -> list[str]:
    from ingestflow.parsing.chunking import chunk
    from ingestflow.parsing.conversion import convert

    chunks = chunk(convert(OUT / name, "pdf"))
    problems = []
    for q in questions:
        fold = " ".join(q["contains"].lower().split())
        where = [(c.page_start, c.page_end) for c in chunks if fold in " ".join(c.text.lower().split())]
        ok = any(a is not None and a <= q["page"] <= (b or a) for a, b in where)
        print(f"  {q['id']:<28} page {q['page']} {q['contains']!r}: chunks at {where} {'ok' if ok else 'MISSING'}")
        if not ok:
            problems.append(q["id"])
    return problems


# --- main -----------------------------------------------------------------------------------------------------


# The groups of recordings: (recordings, questions, split, id prefix, name of the file listing what was spoken).
GROUPS: dict[str, tuple[dict[str, dict[str, Any]], list[dict[str, Any]], str, str, str]] = {
    "held_out": (RECORDINGS, AUDIO_QUESTIONS, "held_out", "ho2-", "recordings.json"),
    "dev": (DEV_RECORDINGS, DEV_AUDIO_QUESTIONS, "dev", "dv-", "dev_recordings.json"),
}


def make_audio(group: str, verify: bool, problems: list[str]) -> list[dict[str, Any]]:
    """Write one group's recordings (and, with verify, their transcripts); return its questions with seconds."""
    recordings, questions, split, _, listing = GROUPS[group]
    qa_items: list[dict[str, Any]] = []
    script: dict[str, Any] = {}
    for name, spec in recordings.items():
        script[name] = synthesize(name, spec)
        print(f"{name}: {script[name][-1]['seconds'][1] + 0.8:.1f} s, {(OUT / name).stat().st_size} bytes")
    (OUT / listing).write_text(json.dumps(script, indent=1) + "\n")
    if not verify:
        return qa_items
    from ingestflow.audio.whisper import transcribe

    transcripts = {name: transcribe(OUT / name, device="cpu") for name in recordings}
    for name, t in transcripts.items():
        (OUT / (Path(name).stem + ".transcript.txt")).write_text(t.text + "\n")
    for q in questions:
        found = answer_seconds(transcripts[q["document"]], q["expect"])
        if found is None:
            print(f"  {q['id']:<28} MISSING {q['expect']}")
            problems.append(q["id"])
            continue
        seconds, text = found
        spoken = [s["seconds"] for s in script[q["document"]]
                  if s["seconds"][0] < seconds[1] and s["seconds"][1] > seconds[0]]
        print(f"  {q['id']:<28} {seconds} {text!r} (synthesized at {spoken})")
        qa_items.append({"id": q["id"], "question": q["question"], "document": q["document"],
                         "seconds": seconds, "split": split})
    return qa_items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["audio", "pdf"], help="make only one kind")
    ap.add_argument("--part", choices=["held_out", "dev"], default="held_out",
                    help="held_out (default): the ho2- recordings and PDFs; dev: only the dev_ recordings and "
                         "their dv- questions (no PDFs), leaving the held-out files and questions alone")
    ap.add_argument("--verify", action="store_true", help="transcribe / parse and check every answer is there")
    ap.add_argument("--write-qa", action="store_true", help="with --verify: put the questions in tests/qa_set.json")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    qa_items: list[dict[str, Any]] = []
    if args.only != "pdf":
        qa_items += make_audio(args.part, args.verify, problems)
    if args.only != "audio" and args.part == "held_out":
        for name, pages in PDFS.items():
            write_pdf(name, pages)
            print(f"{name}: {len(pages)} pages, {(OUT / name).stat().st_size} bytes")
            if args.verify:
                problems += check_pdf(name, [q for q in PDF_QUESTIONS if q["document"] == name])
        qa_items += [{**q, "split": "held_out"} for q in PDF_QUESTIONS]
    if problems:
        print("answers not found as the pipeline sees them:", " ".join(problems))
    if args.write_qa and args.verify:
        write_qa([q for q in qa_items if q["id"] not in problems], args.part)
    return 1 if problems else 0


def write_qa(items: list[dict[str, Any]], group: str) -> None:
    """Replace one group's questions (ho2- or dv-) of tests/qa_set.json, one question a line as the file has them;
    the other questions stay as they are."""
    recordings, _, _, prefix, _ = GROUPS[group]
    qa = json.loads(QA_SET.read_text())
    new_ids = {q["id"] for q in items}
    kept = [q for q in qa["questions"] if not q["id"].startswith(prefix) or q["id"] not in new_ids]
    old = {q["id"]: q for q in kept if q["id"].startswith(prefix)}
    kept = [q for q in kept if not q["id"].startswith(prefix)]
    questions = kept + [*old.values(), *items]
    for name in recordings:
        if name not in qa["audio"]:
            qa["audio"].append(name)
    if group == "held_out":
        for name in PDFS:
            if name not in qa["documents"]:
                qa["documents"].append(name)
    buf = io.StringIO()
    buf.write("{\n")
    buf.write(f'  "about": {json.dumps(qa["about"], ensure_ascii=False)},\n')
    buf.write(f'  "documents": {json.dumps(qa["documents"], ensure_ascii=False)},\n')
    buf.write(f'  "audio": {json.dumps(qa["audio"], ensure_ascii=False)},\n')
    buf.write('  "questions": [\n')
    buf.write(",\n".join(f"    {json.dumps(q, ensure_ascii=False)}" for q in questions))
    buf.write("\n  ]\n}\n")
    QA_SET.write_text(buf.getvalue())
    print(f"tests/qa_set.json: {len(questions)} questions, {len(items)} {prefix}")


if __name__ == "__main__":
    sys.exit(main())
